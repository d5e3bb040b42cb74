# shellcheck shell=bash
# What the predictor's deploy needs, checked before anything deploys (rollout_predictor.sh
# --check, the first step of cloudbuild.yaml) and again by the deploy itself. Every problem is
# reported at once; nothing here changes anything.

# Cloud Run's startup probe on /readyz: the worker answers 200 only once the model is loaded. A
# service may probe for at most 240 s (periodSeconds x failureThreshold):
# https://cloud.google.com/run/docs/configuring/healthchecks
STARTUP_PROBE_PERIOD_S=3
STARTUP_PROBE_FAILURES=80
# What a cold start needs before the probe starts and after it passes: scheduling, image pull,
# container start, then the prediction itself. Cloud Run documents no bound; this is the least
# headroom the push deadline must keep above the probe (config.sh keeps 120 s).
COLD_START_HEADROOM_S=60
# Pub/Sub's largest ack deadline, which is also the longest a push request may take:
# https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions
MAX_PUSH_ACK_DEADLINE_S=600

problems=()

# Succeed when the predictor reads its model's artifacts from S3 and so needs the AWS keys.
needs_s3_keys() {
  case "$MODEL_NEEDS_S3_KEYS" in
    true) return 0 ;;
    false) return 1 ;;
    # A path is a model baked into the image; registry and run URIs are read from the tracking
    # server's artifact store, S3 unless the server proxies artifacts itself (then say false).
    *) [[ "$MODEL_URI" != /* ]] ;;
  esac
}

check_model_source() {
  case "$MODEL_URI" in
    models:/* | runs:/*)
      [[ -n "$MLFLOW_TRACKING_URI" ]] ||
        problems+=("MODEL_URI=$MODEL_URI is resolved by an MLflow tracking server: set MLFLOW_TRACKING_URI")
      ;;
    /*)
      [[ -n "$MODEL_DIR" ]] ||
        problems+=("MODEL_URI=$MODEL_URI is a path in the image: bake a model there with MODEL_DIR (_MODEL_DIR=model)")
      ;;
  esac
  if [[ -n "$MODEL_DIR" && ! -f "$MODEL_DIR/MLmodel" ]]; then
    problems+=("MODEL_DIR=$MODEL_DIR holds no MLmodel file: download the model there before the build")
  fi
  case "$MODEL_NEEDS_S3_KEYS" in
    auto | true | false) ;;
    *) problems+=("MODEL_NEEDS_S3_KEYS=$MODEL_NEEDS_S3_KEYS: use auto, true or false") ;;
  esac
  # The predictor's MODEL_INPUTS (predictor_service/config.py): it would refuse to start.
  case "$MODEL_INPUT" in
    "" | course | ride | features) ;;
    *) problems+=("MODEL_INPUT=$MODEL_INPUT: use course, ride or features, or leave it empty for a model with a signature") ;;
  esac
}

# Cloud Run refuses a revision whose --set-secrets names a version that does not exist or is
# disabled, and the deployer may read a version's state (roles/secretmanager.viewer), never its
# value. https://cloud.google.com/run/docs/configuring/services/secrets
check_secret_version() {
  local secret="$1" version="$2" state
  state="$(query gcloud secrets versions describe "$version" --secret="$secret" \
    --project="$PROJECT_ID" --format='value(state)' || true)"
  [[ "$DRY_RUN" == 1 || "$state" == ENABLED ]] ||
    problems+=("secret $secret has no enabled version '$version': add one (docs/deploy.md) or set MODEL_NEEDS_S3_KEYS=false")
}

check_push_deadline() {
  local least=$((STARTUP_PROBE_PERIOD_S * STARTUP_PROBE_FAILURES + COLD_START_HEADROOM_S))
  if ! [[ "$PUSH_ACK_DEADLINE_S" =~ ^[0-9]+$ ]] || ((PUSH_ACK_DEADLINE_S < least)) ||
    ((PUSH_ACK_DEADLINE_S > MAX_PUSH_ACK_DEADLINE_S)); then
    problems+=("PUSH_ACK_DEADLINE_S=$PUSH_ACK_DEADLINE_S: use $least-$MAX_PUSH_ACK_DEADLINE_S s, so that a push waking the predictor outlasts its start-up")
  fi
}

# The build's one switch for the backend's callers (cloudbuild.yaml _BACKEND_ACCESS), checked
# here because the check step runs before either service deploys.
check_backend_access() {
  case "${BACKEND_ACCESS:---allow-unauthenticated}" in
    --allow-unauthenticated | --no-allow-unauthenticated) ;;
    *) problems+=("_BACKEND_ACCESS=$BACKEND_ACCESS: use --allow-unauthenticated (public) or --no-allow-unauthenticated (private)") ;;
  esac
}

# Run every check; die listing all problems, if any.
check_predictor_inputs() {
  [[ -n "$PROJECT_ID" ]] || problems+=("PROJECT_ID is not set")
  check_backend_access
  check_model_source
  check_push_deadline
  if [[ -n "$PROJECT_ID" ]] && needs_s3_keys; then
    check_secret_version "$SECRET_AWS_ACCESS_KEY_ID" "$AWS_ACCESS_KEY_ID_VERSION"
    check_secret_version "$SECRET_AWS_SECRET_ACCESS_KEY" "$AWS_SECRET_ACCESS_KEY_VERSION"
  fi
  if ((${#problems[@]})); then
    printf 'error: %s\n' ${problems[@]+"${problems[@]}"} >&2
    exit 1
  fi
}
