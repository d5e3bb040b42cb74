# shellcheck shell=bash
# Topics and subscriptions. Works against the Pub/Sub emulator too (docs/deploy.md), which is how
# tests/deploy exercises it; IAM on these resources lives in iam.sh.

# Whoever reads dead letters does so by hand or with a replay script: a minute per message.
DEAD_LETTER_ACK_DEADLINE_S=60
# A backend instance records a result with one Firestore read and one write, then acks; a result
# not acked within this long goes to another instance.
RECORDER_ACK_DEADLINE_S=30

ensure_topic() {
  local topic="$1"
  if ! exists gcloud pubsub topics describe "$topic" --project="$PROJECT_ID"; then
    run gcloud pubsub topics create "$topic" --project="$PROJECT_ID"
  fi
}

# Create a subscription with the wanted settings, or update only the settings that drifted:
# ensure_subscription NAME ACK_DEADLINE_S RETENTION_S DEAD_LETTER_TOPIC CREATE_FLAGS...
# With a dead-letter topic it also gets the retry policy; the create-only flags name the topic.
ensure_subscription() {
  local sub="$1" ack_deadline="$2" retention_s="$3" dead_letters="$4"
  shift 4
  # Either may stay empty: bash before 4.4 (macOS has 3.2) calls an empty "${a[@]}" unbound
  # under set -u, so each is expanded as ${a[@]+"${a[@]}"} (tests/deploy/test_bash32.py).
  local -a retry=() dead_letter=()
  local ack_flag="--ack-deadline=$ack_deadline"
  local retention_flag="--message-retention-duration=${retention_s}s"
  # Subscriptions expire after 31 days without subscribers by default, and a quiet dead-letter
  # subscription is exactly that.
  local expiration_flag="--expiration-period=never"
  if [[ -n "$dead_letters" ]]; then
    retry=(
      --min-retry-delay="${PUSH_MIN_RETRY_DELAY_S}s"
      --max-retry-delay="${PUSH_MAX_RETRY_DELAY_S}s"
    )
    dead_letter=(
      --dead-letter-topic="$dead_letters"
      --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
    )
  fi
  if ! exists gcloud pubsub subscriptions describe "$sub" --project="$PROJECT_ID"; then
    run gcloud pubsub subscriptions create "$sub" "$@" "$ack_flag" "$retention_flag" \
      "$expiration_flag" ${retry[@]+"${retry[@]}"} ${dead_letter[@]+"${dead_letter[@]}"} \
      --project="$PROJECT_ID"
    return
  fi
  # The push endpoint is left alone: cloudbuild.yaml owns it once the predictor exists.
  local ack retention ttl min_backoff max_backoff dl_topic dl_attempts
  local fields="ackDeadlineSeconds,messageRetentionDuration,expirationPolicy.ttl"
  fields+=",retryPolicy.minimumBackoff,retryPolicy.maximumBackoff"
  fields+=",deadLetterPolicy.deadLetterTopic,deadLetterPolicy.maxDeliveryAttempts"
  IFS='|' read -r ack retention ttl min_backoff max_backoff dl_topic dl_attempts < <(
    query gcloud pubsub subscriptions describe "$sub" --project="$PROJECT_ID" \
      --format="value[separator='|'](${fields})"
  ) || true
  local -a changes=()
  [[ "$ack" == "$ack_deadline" ]] || changes+=("$ack_flag")
  [[ "$retention" == "${retention_s}s" ]] || changes+=("$retention_flag")
  # An empty TTL is how Pub/Sub reports "never expires".
  [[ -z "$ttl" ]] || changes+=("$expiration_flag")
  if [[ -n "$dead_letters" ]]; then
    [[ "$min_backoff|$max_backoff" == "${PUSH_MIN_RETRY_DELAY_S}s|${PUSH_MAX_RETRY_DELAY_S}s" ]] ||
      changes+=(${retry[@]+"${retry[@]}"})
    local want_topic="projects/$PROJECT_ID/topics/$dead_letters"
    [[ "$dl_topic|$dl_attempts" == "$want_topic|$MAX_DELIVERY_ATTEMPTS" ]] ||
      changes+=(${dead_letter[@]+"${dead_letter[@]}"})
  fi
  if ((${#changes[@]})); then
    run gcloud pubsub subscriptions update "$sub" ${changes[@]+"${changes[@]}"} \
      --project="$PROJECT_ID"
  fi
}

setup_pubsub() {
  note "Pub/Sub topics: rides, results, dead letters"
  local topic
  for topic in "$RIDES_TOPIC" "$RESULTS_TOPIC" "$DEAD_LETTER_TOPIC"; do
    ensure_topic "$topic"
  done
  # Created without an endpoint, because the predictor's URL exists only after its first
  # deploy: rides published before then wait here instead of failing against a placeholder.
  note "push subscription (pull until cloudbuild.yaml points it at the predictor)"
  # Its ack deadline is the push request's timeout, sized for a predictor cold start; the build
  # sets the same value on the subscription and as the predictor's request timeout (config.sh).
  ensure_subscription "$PUSH_SUBSCRIPTION" "$PUSH_ACK_DEADLINE_S" "$MESSAGE_RETENTION_S" \
    "$DEAD_LETTER_TOPIC" --topic="$RIDES_TOPIC"
  # Created before the push subscription can dead-letter anything (it has no endpoint until the
  # first build), so every dead letter reaches it; it keeps each for DEAD_LETTER_RETENTION_S.
  note "dead-letter subscription, keeping each dead letter $((DEAD_LETTER_RETENTION_S / 86400))" \
    "days until it is read and acked"
  ensure_subscription "$DEAD_LETTER_SUBSCRIPTION" "$DEAD_LETTER_ACK_DEADLINE_S" \
    "$DEAD_LETTER_RETENTION_S" "" --topic="$DEAD_LETTER_TOPIC"
  # No filter: each result goes to one backend instance, whichever process published its ride.
  note "recorder subscription, shared by every backend instance, that records results in Firestore"
  ensure_subscription "$RECORDER_SUBSCRIPTION" "$RECORDER_ACK_DEADLINE_S" "$MESSAGE_RETENTION_S" "" \
    --topic="$RESULTS_TOPIC"
}
