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

# Write $2 to a new temporary file for a --policy or --lifecycle-file flag; print its path. In a
# dry run print the file's contents as a comment and a placeholder path instead.
policy_file() {
  local name="$1" contents="$2" path
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '# %s: %s\n' "$name" "$contents" >&2
    printf '%s' "$name"
    return
  fi
  path="$(mktemp "${TMPDIR:-/tmp}/ride-$name.XXXXXX")"
  printf '%s\n' "$contents" >"$path"
  printf '%s' "$path"
}

# Keep the last AR_KEEP_IMAGES images of each service (each image is a package of its own) and
# delete the rest: a keep policy wins over a delete policy for the versions both match.
# https://cloud.google.com/artifact-registry/docs/repositories/cleanup-policy
CLEANUP_KEEP_ID='keep-last-images'
CLEANUP_DELETE_ID='delete-older-images'
ensure_cleanup_policy() {
  local keep action dry_mode file policy
  IFS='|' read -r keep action dry_mode < <(
    query gcloud artifacts repositories describe "$AR_REPOSITORY" --location="$REGION" \
      --project="$PROJECT_ID" --format="value[separator='|'](cleanupPolicies.$CLEANUP_KEEP_ID.mostRecentVersions.keepCount,cleanupPolicies.$CLEANUP_DELETE_ID.action,cleanupPolicyDryRun)"
  ) || true
  [[ "$keep|$action|$dry_mode" != "$AR_KEEP_IMAGES|DELETE|" &&
    "$keep|$action|$dry_mode" != "$AR_KEEP_IMAGES|DELETE|False" ]] || return 0
  policy="[{\"name\": \"$CLEANUP_KEEP_ID\", \"action\": {\"type\": \"Keep\"},"
  policy+=" \"mostRecentVersions\": {\"keepCount\": $AR_KEEP_IMAGES}},"
  policy+=" {\"name\": \"$CLEANUP_DELETE_ID\", \"action\": {\"type\": \"Delete\"},"
  policy+=" \"condition\": {\"tagState\": \"any\"}}]"
  file="$(policy_file cleanup-policy.json "$policy")"
  run gcloud artifacts repositories set-cleanup-policies "$AR_REPOSITORY" --location="$REGION" \
    --policy="$file" --no-dry-run --project="$PROJECT_ID"
  if [[ "$DRY_RUN" != 1 ]]; then rm -f "$file"; fi
}

# Delete the uploaded sources gcloud builds submit stages under source/ once a build no longer
# needs them. Only that prefix: other objects in the bucket are left alone.
# https://cloud.google.com/storage/docs/lifecycle
ensure_source_lifecycle() {
  local age prefix file rule
  IFS='|' read -r age prefix < <(
    query gcloud storage buckets describe "$BUILD_SOURCE_BUCKET" --project="$PROJECT_ID" \
      --format="value[separator='|'](lifecycle_config.rule[0].condition.age,lifecycle_config.rule[0].condition.matchesPrefix[0])"
  ) || true
  [[ "$age|$prefix" != "$BUILD_SOURCE_RETENTION_DAYS|source/" ]] || return 0
  rule="{\"rule\": [{\"action\": {\"type\": \"Delete\"}, \"condition\": {\"age\": $BUILD_SOURCE_RETENTION_DAYS, \"matchesPrefix\": [\"source/\"]}}]}"
  file="$(policy_file source-lifecycle.json "$rule")"
  run gcloud storage buckets update "$BUILD_SOURCE_BUCKET" --lifecycle-file="$file" \
    --project="$PROJECT_ID"
  if [[ "$DRY_RUN" != 1 ]]; then rm -f "$file"; fi
}

setup_registry() {
  note "Artifact Registry repository for both images"
  if ! exists gcloud artifacts repositories describe "$AR_REPOSITORY" --location="$REGION" \
    --project="$PROJECT_ID"; then
    run gcloud artifacts repositories create "$AR_REPOSITORY" --repository-format=docker \
      --location="$REGION" --description="ride-duration service images" --project="$PROJECT_ID"
  fi
  note "cleanup policy: keep the last $AR_KEEP_IMAGES images of each service, delete older ones"
  ensure_cleanup_policy
  note "bucket where gcloud builds submit stages the source (the deployer account reads it)"
  if ! exists gcloud storage buckets describe "$BUILD_SOURCE_BUCKET" --project="$PROJECT_ID"; then
    run gcloud storage buckets create "$BUILD_SOURCE_BUCKET" --location="$REGION" \
      --uniform-bucket-level-access --project="$PROJECT_ID"
  fi
  note "lifecycle rule: delete uploaded sources after $BUILD_SOURCE_RETENTION_DAYS days"
  ensure_source_lifecycle
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
