#!/usr/bin/env bash
# Deploy the predictor and point the push subscription at it. cloudbuild.yaml runs this with its
# substitutions in the environment: first with --check, which validates everything the deploy
# needs (deploy/predictor_checks.sh) and changes nothing, then without, to deploy the model that
# deploy/pin_model.sh pinned (--model-pin=FILE). --dry-run prints the commands instead.
# Usage: IMAGE=... MODEL_URI=... deploy/rollout_predictor.sh [--check] [--model-pin=FILE] [--dry-run]
#
# A script rather than a plain `gcloud run deploy` step because optional settings must be left
# out when empty (an empty MLFLOW_S3_ENDPOINT_URL makes boto3 fail), because the URL that the
# push subscription and PUSH_AUDIENCE need exists only after the first deploy, and so that the
# check step and the deploy share one set of rules.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHECK_ONLY=0
MODEL_PIN=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --check) CHECK_ONLY=1 ;;
    --model-pin=?*) MODEL_PIN="${arg#--model-pin=}" ;;
    *) sed -n '6s/^# //p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
  esac
done
# shellcheck source=deploy/config.sh
source "$DEPLOY_DIR/config.sh"
# shellcheck source=deploy/lib.sh
source "$DEPLOY_DIR/lib.sh"
# shellcheck source=deploy/predictor_checks.sh
source "$DEPLOY_DIR/predictor_checks.sh"

: "${IMAGE:?IMAGE is the predictor image to deploy}"
: "${MODEL_URI:?MODEL_URI says which model the predictor loads}"
MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-}"
# The version the revision is made with (name/N or run:ID), which its results carry; the pin
# sets it with MODEL_URI.
MODEL_VERSION="${MODEL_VERSION:-}"
if [[ -n "$MODEL_PIN" ]]; then
  [[ -f "$MODEL_PIN" ]] || die "no model pin at $MODEL_PIN: deploy/pin_model.sh writes it"
  pin="$(cat "$MODEL_PIN")"
  MODEL_URI="$(line_value MODEL_URI "$pin")"
  MODEL_VERSION="$(line_value MODEL_VERSION "$pin")"
  [[ -n "$MODEL_URI" ]] || die "$MODEL_PIN names no MODEL_URI"
fi
# What a model without a signature takes (course, ride or features); empty: its signature says.
MODEL_INPUT="${MODEL_INPUT:-}"
MLFLOW_S3_ENDPOINT_URL="${MLFLOW_S3_ENDPOINT_URL:-}"
# A folder of the build context baked into the image at /app/model (cloudbuild.yaml _MODEL_DIR).
MODEL_DIR="${MODEL_DIR:-}"
# auto, true or false: whether the predictor gets the AWS keys (predictor_checks.sh decides auto).
MODEL_NEEDS_S3_KEYS="${MODEL_NEEDS_S3_KEYS:-auto}"
LOG_LEVEL="${LOG_LEVEL:-INFO}"
TRACE_SAMPLE_RATIO="${TRACE_SAMPLE_RATIO:-0.1}"
AWS_ACCESS_KEY_ID_VERSION="${AWS_ACCESS_KEY_ID_VERSION:-latest}"
AWS_SECRET_ACCESS_KEY_VERSION="${AWS_SECRET_ACCESS_KEY_VERSION:-latest}"
PREDICTOR_MEMORY="${PREDICTOR_MEMORY:-1Gi}"
PREDICTOR_CPU="${PREDICTOR_CPU:-1}"
PREDICTOR_CONCURRENCY="${PREDICTOR_CONCURRENCY:-64}"
PREDICTOR_MIN_INSTANCES="${PREDICTOR_MIN_INSTANCES:-0}"
PREDICTOR_MAX_INSTANCES="${PREDICTOR_MAX_INSTANCES:-10}"

check_predictor_inputs
if ((CHECK_ONLY)); then
  note "the predictor's deploy has everything it needs"
  exit 0
fi
# Every instance of a revision serves the same version: an alias in the revision would be
# resolved again by each instance that starts, and would follow the alias when it moves.
if [[ "$MODEL_URI" == models:*@* ]]; then
  die "MODEL_URI=$MODEL_URI is an alias: pin it first (deploy/pin_model.sh FILE, then --model-pin=FILE)"
fi

service_url() {
  query gcloud run services describe "$PREDICTOR_SERVICE" --region="$REGION" \
    --project="$PROJECT_ID" --format='value(status.url)' || true
}

url="$(service_url)"
env_vars=(
  "PROJECT_ID=$PROJECT_ID"
  "MODEL_URI=$MODEL_URI"
  "RESULTS_TOPIC=$RESULTS_TOPIC"
  "DEAD_LETTER_TOPIC=$DEAD_LETTER_TOPIC"
  "LOG_LEVEL=$LOG_LEVEL"
  "TRACE_EXPORTER=cloud"
  "TRACE_SAMPLE_RATIO=$TRACE_SAMPLE_RATIO"
  "PUSH_SERVICE_ACCOUNT=$PUSH_INVOKER_SA"
)
[[ -z "$MLFLOW_TRACKING_URI" ]] || env_vars+=("MLFLOW_TRACKING_URI=$MLFLOW_TRACKING_URI")
[[ -z "$MODEL_INPUT" ]] || env_vars+=("MODEL_INPUT=$MODEL_INPUT")
[[ -z "$MODEL_VERSION" ]] || env_vars+=("MODEL_VERSION=$MODEL_VERSION")
[[ -z "$MLFLOW_S3_ENDPOINT_URL" ]] || env_vars+=("MLFLOW_S3_ENDPOINT_URL=$MLFLOW_S3_ENDPOINT_URL")
# The service is private: Cloud Run's IAM front door checks each push token's signature and
# forwards it with the signature removed, so the predictor checks the claims only. The mode
# needs the audience, which is known once the service exists.
AUTH_ENV="PUSH_AUTH_MODE=cloud-run-iam"
[[ -z "$url" ]] || env_vars+=("PUSH_AUDIENCE=$url" "$AUTH_ENV")
# '^|^' makes '|' the list separator (gcloud topic escaping), so values may hold commas.
joined="$(IFS='|'; printf '%s' "${env_vars[*]}")"

# Without S3 keys the revision mounts no secret at all: --clear-secrets also drops any that an
# earlier revision mounted, which would otherwise carry over into this one.
secrets_flag=--clear-secrets
if needs_s3_keys; then
  secrets_flag="--set-secrets=AWS_ACCESS_KEY_ID=$SECRET_AWS_ACCESS_KEY_ID:$AWS_ACCESS_KEY_ID_VERSION"
  secrets_flag+=",AWS_SECRET_ACCESS_KEY=$SECRET_AWS_SECRET_ACCESS_KEY:$AWS_SECRET_ACCESS_KEY_VERSION"
fi

note "deploy $PREDICTOR_SERVICE from $IMAGE"
# Concurrency matches gunicorn's 64 threads (each push waits for a Publish round trip, so one
# CPU needs that many to stay busy: docs/benchmarks.md); 1 GiB holds LightGBM, numpy/scipy and the MLflow
# client with room for the model. The HTTP startup probe keeps traffic away until the worker
# has loaded the model: gunicorn accepts TCP connections before that, so a TCP probe would not.
# The probe may take its full 240 s, and start-up counts against the request that woke the
# instance, so the request timeout is the push deadline, which covers both (config.sh).
#
# The front door is pinned on every deploy, so that no manual change outlives the next one. In
# cloud-run-iam mode the predictor trusts the claims of a token whose signature Cloud Run has
# checked and removed: that is safe only while Cloud Run's invoker IAM check is on, so
# --invoker-iam-check sets it explicitly (a service can have it turned off, which would let
# forged tokens through). --ingress=internal is the narrowest setting Pub/Sub push still
# passes: it admits Pub/Sub of the same project calling the run.app URL, and nothing from the
# internet. https://cloud.google.com/run/docs/securing/ingress
# https://cloud.google.com/run/docs/authenticating/public
run gcloud run deploy "$PREDICTOR_SERVICE" \
  --image="$IMAGE" \
  --region="$REGION" \
  --project="$PROJECT_ID" \
  --service-account="$PREDICTOR_SA" \
  --no-allow-unauthenticated \
  --invoker-iam-check \
  --ingress=internal \
  --set-env-vars="^|^$joined" \
  "$secrets_flag" \
  --memory="$PREDICTOR_MEMORY" \
  --cpu="$PREDICTOR_CPU" \
  --concurrency="$PREDICTOR_CONCURRENCY" \
  --min-instances="$PREDICTOR_MIN_INSTANCES" \
  --max-instances="$PREDICTOR_MAX_INSTANCES" \
  --timeout="${PUSH_ACK_DEADLINE_S}s" \
  --cpu-boost \
  --startup-probe="httpGet.path=/readyz,periodSeconds=$STARTUP_PROBE_PERIOD_S,timeoutSeconds=2,failureThreshold=$STARTUP_PROBE_FAILURES"

if [[ -z "$url" ]]; then
  note "first deploy: give the new service its own URL as PUSH_AUDIENCE"
  url="$(service_url)"
  if [[ "$DRY_RUN" == 1 ]]; then url="https://$PREDICTOR_SERVICE-PROJECT_NUMBER.$REGION.run.app"; fi
  [[ -n "$url" ]] || die "cannot read the URL of $PREDICTOR_SERVICE"
  run gcloud run services update "$PREDICTOR_SERVICE" --region="$REGION" --project="$PROJECT_ID" \
    --update-env-vars="PUSH_AUDIENCE=$url,$AUTH_ENV"
fi

note "let the push invoker, and only it, call the predictor"
run gcloud run services add-iam-policy-binding "$PREDICTOR_SERVICE" --region="$REGION" \
  --project="$PROJECT_ID" --member="serviceAccount:$PUSH_INVOKER_SA" --role=roles/run.invoker

note "push rides to the predictor with an OIDC token whose audience is its URL"
# The ack deadline is the push request's timeout; it moves with the service's --timeout above.
run gcloud pubsub subscriptions update "$PUSH_SUBSCRIPTION" --project="$PROJECT_ID" \
  --push-endpoint="$url" --push-auth-service-account="$PUSH_INVOKER_SA" \
  --push-auth-token-audience="$url" --ack-deadline="$PUSH_ACK_DEADLINE_S"
