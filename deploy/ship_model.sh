#!/usr/bin/env bash
# Ship a new model beside production, shadow it on live rides, compare, promote, roll back.
# Usage: deploy/ship_model.sh [--dry-run] candidate|shadow|compare|canary|promote|rollback
#
#   candidate  IMAGE=... MODEL_URI=... : a tagged predictor revision that takes no rider traffic;
#              a registry alias is resolved to its version now, and the revision serves that
#              version's folder (MODEL_URI=s3://..., MODEL_VERSION=name/N). Refused while a
#              canary splits the riders' traffic.
#   shadow     the candidate's own push subscription on the rides topic, to its tag URL; its
#              answers go to SHADOW_RESULTS_TOPIC, which no rider reads (SHADOW_SIXTEENTHS=8:
#              half the rides, chosen by ride id).
#   compare    python -m devstack.compare on the live topics for COMPARE_SECONDS.
#   canary     CANARY_PERCENT of the riders' pushes to the candidate revision.
#   promote    all traffic to the candidate, the shadow ended, the production alias moved to its
#              version (the version it replaces kept under `previous`).
#   rollback   traffic and the production alias back to `previous`.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STEP=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    candidate | shadow | compare | canary | promote | rollback) STEP="$arg" ;;
    *) sed -n '3s/^# //p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
  esac
done
[[ -n "$STEP" ]] || { sed -n '3s/^# //p' "${BASH_SOURCE[0]}" >&2; exit 2; }
# shellcheck source=deploy/config.sh
source "$DEPLOY_DIR/config.sh"
# shellcheck source=deploy/lib.sh
source "$DEPLOY_DIR/lib.sh"

[[ -n "$PROJECT_ID" ]] || die "PROJECT_ID is required"
CANDIDATE_TAG="${CANDIDATE_TAG:-candidate}"
PREVIOUS_TAG="${PREVIOUS_TAG:-previous}"
SHADOW_SIXTEENTHS="${SHADOW_SIXTEENTHS:-16}"
CANARY_PERCENT="${CANARY_PERCENT:-10}"
COMPARE_SECONDS="${COMPARE_SECONDS:-600}"
MODEL_NAME="${MODEL_NAME:-ride-duration}"
MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-}"
PYTHON="${PYTHON:-python3}"
# devstack.shadow and devstack.compare, from this checkout.
export PYTHONPATH="$DEPLOY_DIR/..${PYTHONPATH:+:$PYTHONPATH}"
RUN_ARGS=(--region="$REGION" --project="$PROJECT_ID")

# The registry's aliases move with the traffic; a model outside the registry has none to move.
alias_step() {
  if [[ -z "$MLFLOW_TRACKING_URI" ]]; then
    note "no MLFLOW_TRACKING_URI: no registry alias to move"
    return 0
  fi
  if [[ "$DRY_RUN" == 1 ]]; then
    quote_cmd "$PYTHON" "$DEPLOY_DIR/model_alias.py" "$@"
    return 0
  fi
  MLFLOW_TRACKING_URI="$MLFLOW_TRACKING_URI" "$PYTHON" "$DEPLOY_DIR/model_alias.py" "$@"
}

# MODEL_URI=... and MODEL_VERSION=... lines: what a revision made now loads, and its version
# (deploy/model_alias.py). Moves the candidate alias with `candidate`; a read of the registry
# otherwise, made in a dry run too, so that the plan shows the folder and version.
pin_model() {
  local command="$1"
  if [[ "$command" == candidate && ( -z "$MLFLOW_TRACKING_URI" || "$DRY_RUN" == 1 ) ]]; then
    alias_step candidate "$MODEL_URI" >&2
    command=pin
  fi
  MLFLOW_TRACKING_URI="$MLFLOW_TRACKING_URI" "$PYTHON" "$DEPLOY_DIR/model_alias.py" \
    "$command" "$MODEL_URI" || die "cannot pin $MODEL_URI"
}

service_url() {
  local url
  url="$(query gcloud run services describe "$PREDICTOR_SERVICE" "${RUN_ARGS[@]}" \
    --format='value(status.url)' || true)"
  if [[ "$DRY_RUN" == 1 ]]; then url="https://$PREDICTOR_SERVICE-PROJECT_NUMBER.$REGION.run.app"; fi
  [[ -n "$url" ]] || die "cannot read the URL of $PREDICTOR_SERVICE: deploy it first"
  printf '%s\n' "$url"
}

# The URL Cloud Run gave the revision tagged $1 (status.traffic[].url), or nothing if no revision
# has that tag. Its form is https://TAG---<the service's host>
# (https://cloud.google.com/run/docs/triggering/https-request#deterministic).
tag_url() {
  local described
  described="$(query gcloud run services describe "$PREDICTOR_SERVICE" "${RUN_ARGS[@]}" \
    --format=json || true)"
  if [[ "$DRY_RUN" == 1 ]]; then
    printf 'https://%s---%s-PROJECT_NUMBER.%s.run.app\n' "$1" "$PREDICTOR_SERVICE" "$REGION"
    return 0
  fi
  [[ -n "$described" ]] || return 0
  printf '%s' "$described" | "$PYTHON" -c '
import json, sys
traffic = json.load(sys.stdin).get("status", {}).get("traffic", [])
print(next((t.get("url", "") for t in traffic if t.get("tag") == sys.argv[1]), ""))' "$1"
}

case "$STEP" in
  candidate)
    : "${IMAGE:?IMAGE is the predictor image the candidate runs (the serving one will do)}"
    : "${MODEL_URI:?MODEL_URI is the candidate model: models:/name/N, models:/name@alias, runs:/...}"
    pin="$(pin_model candidate)"
    pinned="$(line_value MODEL_URI "$pin")"
    version="$(line_value MODEL_VERSION "$pin")"
    [[ -n "$pinned" ]] || die "cannot pin $MODEL_URI"
    # The revision holding the riders' traffic (deploy/serving_revision.py): refused while a
    # canary splits it, when no single revision is production.
    service="$(query gcloud run services describe "$PREDICTOR_SERVICE" "${RUN_ARGS[@]}" \
      --format=json || true)"
    if [[ "$DRY_RUN" == 1 ]]; then
      serving="SERVING_REVISION"
    else
      serving="$(printf '%s' "$service" | "$PYTHON" "$DEPLOY_DIR/serving_revision.py")" ||
        die "cannot tell the revision serving $PREDICTOR_SERVICE"
    fi
    note "tag the revision serving now, $serving, as $PREVIOUS_TAG: rollback returns to it"
    run gcloud run services update-traffic "$PREDICTOR_SERVICE" "${RUN_ARGS[@]}" \
      --update-tags="$PREVIOUS_TAG=$serving"
    note "deploy $pinned (version ${version:-named by its MLmodel}) as revision tag $CANDIDATE_TAG, with no rider traffic"
    # --update-env-vars keeps every other setting of the serving revision, so MODEL_VERSION is
    # always set, empty when the folder's MLmodel names the version. The shadow settings only
    # tell this revision's shadow pushes apart; riders' pushes are answered as always.
    run gcloud run deploy "$PREDICTOR_SERVICE" --image="$IMAGE" "${RUN_ARGS[@]}" \
      --no-traffic --tag="$CANDIDATE_TAG" \
      --update-env-vars="^|^MODEL_URI=$pinned|MODEL_VERSION=$version|SHADOW_SUBSCRIPTION=$SHADOW_SUBSCRIPTION|SHADOW_RESULTS_TOPIC=$SHADOW_RESULTS_TOPIC"
    ;;
  shadow)
    url="$(service_url)"
    candidate_url="$(tag_url "$CANDIDATE_TAG")"
    [[ -n "$candidate_url" ]] || die "no revision is tagged $CANDIDATE_TAG: run the candidate step first"
    if ! exists gcloud pubsub topics describe "$SHADOW_RESULTS_TOPIC" --project="$PROJECT_ID"; then
      run gcloud pubsub topics create "$SHADOW_RESULTS_TOPIC" --project="$PROJECT_ID"
    fi
    filter="$("$PYTHON" -c 'import sys; from devstack.shadow import ride_filter; print(ride_filter(int(sys.argv[1])))' "$SHADOW_SIXTEENTHS")"
    filter_flag=()
    [[ -z "$filter" ]] || filter_flag=(--message-filter="$filter")
    note "push the riders' rides to $candidate_url too, as a shadow"
    # Sent to the tag URL, the token names the service URL as its audience: Cloud Run accepts
    # the service's run.app URL, which "always remains an accepted audience value", and the
    # custom audiences set on the service, which apply "to all serving revisions"
    # (https://cloud.google.com/run/docs/configuring/custom-audiences); a tag URL is not among
    # them. Pub/Sub's audience is the push endpoint unless one is given, hence the flag. The
    # predictor checks the same audience (PUSH_AUDIENCE, deploy/rollout_predictor.sh).
    # No dead-letter policy: a shadow failure never enters the riders' dead letters.
    run gcloud pubsub subscriptions create "$SHADOW_SUBSCRIPTION" --project="$PROJECT_ID" \
      --topic="$RIDES_TOPIC" --push-endpoint="$candidate_url/" \
      --push-auth-service-account="$PUSH_INVOKER_SA" --push-auth-token-audience="$url" \
      --ack-deadline="$PUSH_ACK_DEADLINE_S" --message-retention-duration=1h \
      --min-retry-delay="${PUSH_MIN_RETRY_DELAY_S}s" --max-retry-delay="${PUSH_MAX_RETRY_DELAY_S}s" \
      ${filter_flag[@]+"${filter_flag[@]}"}
    ;;
  compare)
    cmd=("$PYTHON" -m devstack.compare --project="$PROJECT_ID" --rides-topic="$RIDES_TOPIC"
      --results-topic="$RESULTS_TOPIC" --dead-letter-topic="$DEAD_LETTER_TOPIC"
      --shadow-topic="$SHADOW_RESULTS_TOPIC" --seconds="$COMPARE_SECONDS")
    if [[ "$DRY_RUN" == 1 ]]; then quote_cmd "${cmd[@]}"; else "${cmd[@]}"; fi
    ;;
  canary)
    note "$CANARY_PERCENT% of the riders' pushes to the candidate"
    run gcloud run services update-traffic "$PREDICTOR_SERVICE" "${RUN_ARGS[@]}" \
      --to-tags="$CANDIDATE_TAG=$CANARY_PERCENT"
    ;;
  promote)
    note "every rider's push to the candidate revision, the one that was shadowed"
    run gcloud run services update-traffic "$PREDICTOR_SERVICE" "${RUN_ARGS[@]}" \
      --to-tags="$CANDIDATE_TAG=100"
    note "end the shadow"
    if exists gcloud pubsub subscriptions describe "$SHADOW_SUBSCRIPTION" --project="$PROJECT_ID" \
      || [[ "$DRY_RUN" == 1 ]]; then
      run gcloud pubsub subscriptions delete "$SHADOW_SUBSCRIPTION" --project="$PROJECT_ID"
    fi
    alias_step promote "$MODEL_NAME"
    ;;
  rollback)
    note "every rider's push back to the revision tagged $PREVIOUS_TAG"
    run gcloud run services update-traffic "$PREDICTOR_SERVICE" "${RUN_ARGS[@]}" \
      --to-tags="$PREVIOUS_TAG=100"
    alias_step rollback "$MODEL_NAME"
    ;;
esac
