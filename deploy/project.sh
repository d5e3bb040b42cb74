# shellcheck shell=bash
# Project basics: APIs, the Artifact Registry repository, the build-source bucket and the
# service accounts.

APIS=(
  run.googleapis.com
  cloudbuild.googleapis.com
  artifactregistry.googleapis.com
  pubsub.googleapis.com
  firestore.googleapis.com
  secretmanager.googleapis.com
  iam.googleapis.com
  # Spans, log-based metrics, the dashboard and alerts (monitoring.sh).
  cloudtrace.googleapis.com
  logging.googleapis.com
  monitoring.googleapis.com
)

setup_apis() {
  note "APIs"
  # Enabling an enabled API is a no-op, so there is nothing to check first.
  run gcloud services enable "${APIS[@]}" --project="$PROJECT_ID"
  # The Pub/Sub service agent is created lazily; iam.sh grants it roles for dead-lettering and
  # push tokens, so make sure it exists (this returns the existing one otherwise).
  run gcloud beta services identity create --service=pubsub.googleapis.com --project="$PROJECT_ID"
}

setup_registry() {
  note "Artifact Registry repository for both images"
  if ! exists gcloud artifacts repositories describe "$AR_REPOSITORY" --location="$REGION" \
    --project="$PROJECT_ID"; then
    run gcloud artifacts repositories create "$AR_REPOSITORY" --repository-format=docker \
      --location="$REGION" --description="ride-duration service images" --project="$PROJECT_ID"
  fi
  note "bucket where gcloud builds submit stages the source (the deployer account reads it)"
  if ! exists gcloud storage buckets describe "$BUILD_SOURCE_BUCKET" --project="$PROJECT_ID"; then
    run gcloud storage buckets create "$BUILD_SOURCE_BUCKET" --location="$REGION" \
      --uniform-bucket-level-access --project="$PROJECT_ID"
  fi
}

ensure_service_account() {
  local id="$1" display_name="$2"
  if ! exists gcloud iam service-accounts describe "$(sa_email "$id")" --project="$PROJECT_ID"; then
    run gcloud iam service-accounts create "$id" --display-name="$display_name" \
      --project="$PROJECT_ID"
  fi
}

setup_accounts() {
  note "service accounts, one per identity"
  ensure_service_account "$BACKEND_SA_ID" "ride backend (Cloud Run runtime)"
  ensure_service_account "$PREDICTOR_SA_ID" "ride predictor (Cloud Run runtime)"
  ensure_service_account "$PUSH_INVOKER_SA_ID" "Pub/Sub push to the ride predictor"
  ensure_service_account "$DEPLOYER_SA_ID" "Cloud Build deployer of the ride services"
}
