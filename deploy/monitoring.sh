# shellcheck shell=bash
# What an operator watches: log-based metrics, the dashboard and the alert policies, all kept as
# JSON in deploy/monitoring/ and created or brought up to date on every run. docs/operations.md
# says what each shows and what to do when an alert fires.
#
# Log-based metrics, not OpenTelemetry metrics: the confirmations' counts and latency come from
# the request log Cloud Run already writes for every request, so they cost the services nothing;
# the predictor's outcomes, latency and model versions come from one log line per push that it
# writes anyway. OpenTelemetry metrics would need an exporter in each worker, flushing on a
# timer that Cloud Run's CPU throttling stalls between requests.

# Where notifications go: an email address of yours. Without one the policies are created with
# no channel: they still open incidents in the console, but tell no one.
ALERT_EMAIL="${ALERT_EMAIL:-}"
MONITORING_DIR="$DEPLOY_DIR/monitoring"
# The names the JSON files refer to as ${NAME}, replaced when they are rendered.
MONITORING_NAMES=(PROJECT_ID BACKEND_SERVICE PREDICTOR_SERVICE PUSH_SUBSCRIPTION
  DEAD_LETTER_SUBSCRIPTION)

# Write $1 with every ${NAME} of MONITORING_NAMES replaced to $2.
render() {
  local text name
  text="$(<"$1")"
  for name in "${MONITORING_NAMES[@]}"; do
    text="${text//"\${$name}"/${!name}}"
  done
  printf '%s\n' "$text" >"$2"
}

# The displayName of a dashboard or policy file: its first one, the top level's.
display_name() { sed -n 's/^  "displayName": "\(.*\)",$/\1/p' "$1" | head -n 1; }

ensure_log_metric() {
  local file="$1" name
  name="$(basename "$file" .json)"
  if exists gcloud logging metrics describe "$name" --project="$PROJECT_ID"; then
    run gcloud logging metrics update "$name" --config-from-file="$file" --project="$PROJECT_ID"
  else
    run gcloud logging metrics create "$name" --config-from-file="$file" --project="$PROJECT_ID"
  fi
}

ensure_dashboard() {
  local file="$1" found
  found="$(query gcloud monitoring dashboards list --project="$PROJECT_ID" \
    --filter="displayName=\"$(display_name "$file")\"" --format='value(name)' | head -n 1)"
  if [[ -n "$found" ]]; then
    run gcloud monitoring dashboards update "$found" --config-from-file="$file" \
      --project="$PROJECT_ID"
  else
    run gcloud monitoring dashboards create --config-from-file="$file" --project="$PROJECT_ID"
  fi
}

# Print the name of the email channel for ALERT_EMAIL, creating it if need be.
email_channel() {
  local found
  found="$(query gcloud beta monitoring channels list --project="$PROJECT_ID" \
    --filter="type=\"email\" AND labels.email_address=\"$ALERT_EMAIL\"" --format='value(name)' |
    head -n 1)"
  if [[ -z "$found" ]]; then
    run gcloud beta monitoring channels create --project="$PROJECT_ID" --type=email \
      --display-name="ride-duration alerts ($ALERT_EMAIL)" \
      --channel-labels="email_address=$ALERT_EMAIL" >&2
    found="$(query gcloud beta monitoring channels list --project="$PROJECT_ID" \
      --filter="type=\"email\" AND labels.email_address=\"$ALERT_EMAIL\"" \
      --format='value(name)' | head -n 1)"
  fi
  # A dry run creates nothing: the plan names the channel the first run would make.
  printf '%s' "${found:-projects/$PROJECT_ID/notificationChannels/CHANNEL_ID}"
}

ensure_alert_policy() {
  local file="$1" channel="$2" found
  if [[ -n "$channel" ]]; then
    # No sed -i: BSD sed (macOS) wants a suffix argument GNU sed refuses.
    { printf '{\n  "notificationChannels": ["%s"],' "$channel"; sed '1s/^{//' "$file"; } \
      >"$file.tmp" && mv "$file.tmp" "$file"
  fi
  found="$(query gcloud alpha monitoring policies list --project="$PROJECT_ID" \
    --filter="displayName=\"$(display_name "$file")\"" --format='value(name)' | head -n 1)"
  if [[ -n "$found" ]]; then
    run gcloud alpha monitoring policies update "$found" --policy-from-file="$file" \
      --project="$PROJECT_ID"
  else
    run gcloud alpha monitoring policies create --policy-from-file="$file" --project="$PROJECT_ID"
  fi
}

setup_monitoring() {
  local out file channel=""
  # Rendered files for gcloud to read; a test names the folder to read them back.
  out="${MONITORING_RENDER_DIR:-$(mktemp -d)}"
  mkdir -p "$out/metrics" "$out/alerts"

  note "log-based metrics: confirmations, pushes, predictions, results by model_version"
  for file in "$MONITORING_DIR"/metrics/*.json; do
    render "$file" "$out/metrics/$(basename "$file")"
    ensure_log_metric "$out/metrics/$(basename "$file")"
  done

  note "dashboard: $(display_name "$MONITORING_DIR/dashboard.json")"
  render "$MONITORING_DIR/dashboard.json" "$out/dashboard.json"
  ensure_dashboard "$out/dashboard.json"

  if [[ -n "$ALERT_EMAIL" ]]; then
    note "notification channel: email to $ALERT_EMAIL"
    channel="$(email_channel)"
  else
    note "no ALERT_EMAIL: alert policies without a notification channel (they notify no one)"
  fi
  note "alert policies: dead letters, push backlog, backend 5xx, late answers"
  for file in "$MONITORING_DIR"/alerts/*.json; do
    render "$file" "$out/alerts/$(basename "$file")"
    ensure_alert_policy "$out/alerts/$(basename "$file")" "$channel"
  done
  [[ -n "${MONITORING_RENDER_DIR:-}" ]] || rm -rf "$out"
}
