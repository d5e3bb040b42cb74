#!/usr/bin/env bash
# Deploy the predictor and point the push subscription at it. cloudbuild.yaml runs this with its
# substitutions in the environment; --dry-run prints the commands instead.
# Usage: IMAGE=... MODEL_URI=... deploy/rollout_predictor.sh [--dry-run]
#
# A script rather than a plain `gcloud run deploy` step because optional settings must be left
# out when empty (an empty MLFLOW_S3_ENDPOINT_URL makes boto3 fail), and because the URL that the
# push subscription and PUSH_AUDIENCE need exists only after the first deploy.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ "${1:-}" == --dry-run ]]; then DRY_RUN=1; fi
# shellcheck source=deploy/config.sh
source "$DEPLOY_DIR/config.sh"
# shellcheck source=deploy/lib.sh
source "$DEPLOY_DIR/lib.sh"

: "${IMAGE:?IMAGE is the predictor image to deploy}"
: "${MODEL_URI:?MODEL_URI says which model the predictor loads}"
MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-}"
MLFLOW_S3_ENDPOINT_URL="${MLFLOW_S3_ENDPOINT_URL:-}"
LOG_LEVEL="${LOG_LEVEL:-INFO}"
AWS_ACCESS_KEY_ID_VERSION="${AWS_ACCESS_KEY_ID_VERSION:-latest}"
AWS_SECRET_ACCESS_KEY_VERSION="${AWS_SECRET_ACCESS_KEY_VERSION:-latest}"
PREDICTOR_MEMORY="${PREDICTOR_MEMORY:-1Gi}"
PREDICTOR_CPU="${PREDICTOR_CPU:-1}"
PREDICTOR_CONCURRENCY="${PREDICTOR_CONCURRENCY:-8}"
PREDICTOR_MIN_INSTANCES="${PREDICTOR_MIN_INSTANCES:-0}"
PREDICTOR_MAX_INSTANCES="${PREDICTOR_MAX_INSTANCES:-10}"

[[ -n "$PROJECT_ID" ]] || die "PROJECT_ID is not set"
if [[ "$MODEL_URI" == models:* || "$MODEL_URI" == runs:* ]] && [[ -z "$MLFLOW_TRACKING_URI" ]]; then
  die "MODEL_URI=$MODEL_URI is resolved by an MLflow tracking server: set MLFLOW_TRACKING_URI"
fi

service_url() {
  query gcloud run services describe "$PREDICTOR_SERVICE" --region="$REGION" \
    --project="$PROJECT_ID" --format='value(status.url)' || true
}

url="$(service_url)"
env_vars=(
  "PROJECT_ID=$PROJECT_ID"
  "MODEL_URI=$MODEL_URI"
  "BACKEND_PULL_STREAM=$BACKEND_PULL_STREAM"
  "DEAD_LETTER_TOPIC=$DEAD_LETTER_TOPIC"
  "LOG_LEVEL=$LOG_LEVEL"
  "PUSH_SERVICE_ACCOUNT=$PUSH_INVOKER_SA"
)
[[ -z "$MLFLOW_TRACKING_URI" ]] || env_vars+=("MLFLOW_TRACKING_URI=$MLFLOW_TRACKING_URI")
[[ -z "$MLFLOW_S3_ENDPOINT_URL" ]] || env_vars+=("MLFLOW_S3_ENDPOINT_URL=$MLFLOW_S3_ENDPOINT_URL")
[[ -z "$url" ]] || env_vars+=("PUSH_AUDIENCE=$url")
# '^|^' makes '|' the list separator (gcloud topic escaping), so values may hold commas.
joined="$(IFS='|'; printf '%s' "${env_vars[*]}")"

secrets="AWS_ACCESS_KEY_ID=$SECRET_AWS_ACCESS_KEY_ID:$AWS_ACCESS_KEY_ID_VERSION"
secrets+=",AWS_SECRET_ACCESS_KEY=$SECRET_AWS_SECRET_ACCESS_KEY:$AWS_SECRET_ACCESS_KEY_VERSION"

note "deploy $PREDICTOR_SERVICE from $IMAGE"
# Concurrency matches gunicorn's 8 threads; 1 GiB holds LightGBM, numpy/scipy and the MLflow
# client with room for the model. The HTTP startup probe keeps traffic away until the worker
# has loaded the model: gunicorn accepts TCP connections before that, so a TCP probe would not.
# Cloud Run allows at most 240 s of startup probing.
run gcloud run deploy "$PREDICTOR_SERVICE" \
  --image="$IMAGE" \
  --region="$REGION" \
  --project="$PROJECT_ID" \
  --service-account="$PREDICTOR_SA" \
  --no-allow-unauthenticated \
  --set-env-vars="^|^$joined" \
  --set-secrets="$secrets" \
  --memory="$PREDICTOR_MEMORY" \
  --cpu="$PREDICTOR_CPU" \
  --concurrency="$PREDICTOR_CONCURRENCY" \
  --min-instances="$PREDICTOR_MIN_INSTANCES" \
  --max-instances="$PREDICTOR_MAX_INSTANCES" \
  --timeout="${PUSH_ACK_DEADLINE_S}s" \
  --cpu-boost \
  --startup-probe=httpGet.path=/readyz,periodSeconds=3,timeoutSeconds=2,failureThreshold=60

if [[ -z "$url" ]]; then
  note "first deploy: give the new service its own URL as PUSH_AUDIENCE"
  url="$(service_url)"
  if [[ "$DRY_RUN" == 1 ]]; then url="https://$PREDICTOR_SERVICE-PROJECT_NUMBER.$REGION.run.app"; fi
  [[ -n "$url" ]] || die "cannot read the URL of $PREDICTOR_SERVICE"
  run gcloud run services update "$PREDICTOR_SERVICE" --region="$REGION" --project="$PROJECT_ID" \
    --update-env-vars="PUSH_AUDIENCE=$url"
fi

note "let the push invoker, and only it, call the predictor"
run gcloud run services add-iam-policy-binding "$PREDICTOR_SERVICE" --region="$REGION" \
  --project="$PROJECT_ID" --member="serviceAccount:$PUSH_INVOKER_SA" --role=roles/run.invoker

note "push rides to the predictor with an OIDC token whose audience is its URL"
run gcloud pubsub subscriptions update "$PUSH_SUBSCRIPTION" --project="$PROJECT_ID" \
  --push-endpoint="$url" --push-auth-service-account="$PUSH_INVOKER_SA" \
  --push-auth-token-audience="$url"
