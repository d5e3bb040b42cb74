#!/usr/bin/env bash
# Delete everything deploy/setup.sh and the build created, so that nothing is left to pay for.
# Usage: deploy/teardown.sh [--dry-run] [--yes] [--keep-secrets] [--firestore=keep|rides|database] [--only SECTION[,SECTION...]]
# Sections, in order: services monitoring pubsub firestore secrets iam accounts registry
# (default: all).
# It asks before deleting (type the project id) unless --yes; the secrets get their own question.
# Firestore: keep (default) leaves the database and its rides, rides deletes the rides
# collection, database deletes the whole database. Running it twice is harmless. See
# docs/deploy.md.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SECTIONS=(services monitoring pubsub firestore secrets iam accounts registry)

usage() { sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

only=""
YES=0
KEEP_SECRETS=0
FIRESTORE_CHOICE=keep
while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --yes) YES=1 ;;
    --keep-secrets) KEEP_SECRETS=1 ;;
    --firestore=*) FIRESTORE_CHOICE="${1#--firestore=}" ;;
    --only) only="${2:?--only needs a section list}"; shift ;;
    --only=*) only="${1#--only=}" ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=deploy/config.sh
source "$DEPLOY_DIR/config.sh"
# shellcheck source=deploy/lib.sh
source "$DEPLOY_DIR/lib.sh"
# shellcheck source=deploy/iam.sh
source "$DEPLOY_DIR/iam.sh"
# shellcheck source=deploy/monitoring.sh
source "$DEPLOY_DIR/monitoring.sh"

[[ -n "$PROJECT_ID" ]] || die "set PROJECT_ID (or CLOUDSDK_CORE_PROJECT) to the target project"
case "$FIRESTORE_CHOICE" in
  keep | rides | database) ;;
  *) die "--firestore=$FIRESTORE_CHOICE: use keep, rides or database" ;;
esac

# Succeed when a resource exists. A dry run probes nothing and reports "present", so the plan
# shows everything a first teardown would delete.
present() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '# check: %s\n' "$(quote_cmd "$@")"
    return 0
  fi
  "$@" >/dev/null 2>&1
}

teardown_services() {
  note "Cloud Run services (nothing serves or bills once they are gone)"
  local service
  for service in "$BACKEND_SERVICE" "$PREDICTOR_SERVICE"; do
    if present gcloud run services describe "$service" --region="$REGION" --project="$PROJECT_ID"; then
      run gcloud run services delete "$service" --region="$REGION" --project="$PROJECT_ID" --quiet
    fi
  done
}

# Delete what `list` (a gcloud list command, filtered by display name) finds with `delete`;
# a dry run plans the delete under the display name, since it lists nothing.
delete_listed_by_name() {
  local list="$1" delete="$2" name="$3" found
  if [[ "$DRY_RUN" == 1 ]]; then
    # shellcheck disable=SC2086 # the command words are split on purpose
    query gcloud $list --project="$PROJECT_ID" --filter="displayName=\"$name\"" --format='value(name)'
    # shellcheck disable=SC2086
    run gcloud $delete "<$name>" --project="$PROJECT_ID" --quiet
    return
  fi
  # shellcheck disable=SC2086
  while read -r found; do
    if [[ -n "$found" ]]; then run gcloud $delete "$found" --project="$PROJECT_ID" --quiet; fi
  done < <(query gcloud $list --project="$PROJECT_ID" --filter="displayName=\"$name\"" \
    --format='value(name)' || true)
}

teardown_monitoring() {
  note "Cloud Monitoring: the alert policies, the dashboard and the log-based metrics setup made" \
    "(an email channel for ALERT_EMAIL stays: other policies may use it)"
  local file name
  for file in "$MONITORING_DIR"/alerts/*.json; do
    delete_listed_by_name "alpha monitoring policies list" "alpha monitoring policies delete" \
      "$(display_name "$file")"
  done
  delete_listed_by_name "monitoring dashboards list" "monitoring dashboards delete" \
    "$(display_name "$MONITORING_DIR/dashboard.json")"
  for file in "$MONITORING_DIR"/metrics/*.json; do
    name="$(basename "$file" .json)"
    if present gcloud logging metrics describe "$name" --project="$PROJECT_ID"; then
      run gcloud logging metrics delete "$name" --project="$PROJECT_ID" --quiet
    fi
  done
}

# Every subscription of the project on the three topics, the per-process results subscriptions
# of crashed backend instances included, and those a crash left detached from a deleted topic
# (Pub/Sub reports their topic as _deleted-topic_) whose names are ours.
our_subscriptions() {
  local name topic base wanted
  wanted=" projects/$PROJECT_ID/topics/$RIDES_TOPIC projects/$PROJECT_ID/topics/$RESULTS_TOPIC"
  wanted+=" projects/$PROJECT_ID/topics/$DEAD_LETTER_TOPIC"
  wanted+=" projects/$PROJECT_ID/topics/$SHADOW_RESULTS_TOPIC "
  while IFS='|' read -r name topic; do
    [[ -n "$name" ]] || continue
    base="${name##*/}"
    if [[ "$wanted" == *" $topic "* ]] ||
      [[ "$topic" == _deleted-topic_ && ("$base" == "$RESULTS_TOPIC"-* ||
        " $PUSH_SUBSCRIPTION $DEAD_LETTER_SUBSCRIPTION $RECORDER_SUBSCRIPTION $SHADOW_SUBSCRIPTION " == *" $base "*) ]]; then
      printf '%s\n' "$base"
    fi
  done < <(
    query gcloud pubsub subscriptions list --project="$PROJECT_ID" \
      --format="value[separator='|'](name,topic)" || true
  )
}

teardown_pubsub() {
  note "Pub/Sub: every subscription on the three topics and a candidate's shadow topic" \
    "(per-process results subscriptions and the shadow's included), then the topics"
  local sub topic
  if [[ "$DRY_RUN" == 1 ]]; then
    note "and every other subscription 'gcloud pubsub subscriptions list' shows on them"
  fi
  while read -r sub; do
    run gcloud pubsub subscriptions delete "$sub" --project="$PROJECT_ID" --quiet
  done < <(
    our_subscriptions
    if [[ "$DRY_RUN" == 1 ]]; then
      printf '%s\n' "$PUSH_SUBSCRIPTION" "$DEAD_LETTER_SUBSCRIPTION" "$RECORDER_SUBSCRIPTION"
    fi
  )
  for topic in "$RIDES_TOPIC" "$RESULTS_TOPIC" "$DEAD_LETTER_TOPIC" "$SHADOW_RESULTS_TOPIC"; do
    if present gcloud pubsub topics describe "$topic" --project="$PROJECT_ID"; then
      run gcloud pubsub topics delete "$topic" --project="$PROJECT_ID" --quiet
    fi
  done
}

teardown_firestore() {
  case "$FIRESTORE_CHOICE" in
    keep)
      note "Firestore: database $FIRESTORE_DATABASE and its rides kept" \
        "(--firestore=rides deletes the rides, --firestore=database the database)"
      ;;
    rides)
      note "Firestore: delete every document of $RIDES_COLLECTION; the database stays"
      if present gcloud firestore databases describe --database="$FIRESTORE_DATABASE" \
        --project="$PROJECT_ID"; then
        run gcloud firestore bulk-delete --collection-ids="$RIDES_COLLECTION" \
          --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" --quiet
      fi
      ;;
    database)
      note "Firestore: delete database $FIRESTORE_DATABASE with everything in it"
      if present gcloud firestore databases describe --database="$FIRESTORE_DATABASE" \
        --project="$PROJECT_ID"; then
        run gcloud firestore databases delete --database="$FIRESTORE_DATABASE" \
          --project="$PROJECT_ID" --quiet
      fi
      ;;
  esac
}

teardown_secrets() {
  if ((KEEP_SECRETS)); then
    note "secrets $SECRET_AWS_ACCESS_KEY_ID and $SECRET_AWS_SECRET_ACCESS_KEY kept"
    return
  fi
  note "Secret Manager: both secrets with every version (the AWS keys are gone for good)"
  local secret
  for secret in "$SECRET_AWS_ACCESS_KEY_ID" "$SECRET_AWS_SECRET_ACCESS_KEY"; do
    if present gcloud secrets describe "$secret" --project="$PROJECT_ID"; then
      run gcloud secrets delete "$secret" --project="$PROJECT_ID" --quiet
    fi
  done
}

# Project-level bindings of our accounts (the grants on topics, subscriptions, secrets, accounts,
# the repository and the bucket go with those resources), then the custom roles.
teardown_iam() {
  note "IAM: the project-level bindings of the four accounts, then the custom roles"
  local role member email
  local ours=" $BACKEND_SA $PREDICTOR_SA $PUSH_INVOKER_SA $DEPLOYER_SA "
  if [[ "$DRY_RUN" == 1 ]]; then
    note "those setup grants, and any other 'gcloud projects get-iam-policy' shows for them"
    while IFS='|' read -r member role; do
      run gcloud projects remove-iam-policy-binding "$PROJECT_ID" --member="$member" \
        --role="$role" --all
    done < <(project_grants)
  fi
  while IFS='|' read -r role member; do
    [[ -n "$member" ]] || continue
    email="${member#deleted:}"
    email="${email#serviceAccount:}"
    email="${email%%\?*}"
    [[ "$ours" == *" $email "* ]] || continue
    run gcloud projects remove-iam-policy-binding "$PROJECT_ID" --member="$member" \
      --role="$role" --all
  done < <(
    query gcloud projects get-iam-policy "$PROJECT_ID" --flatten='bindings[].members' \
      --format="value[separator='|'](bindings.role,bindings.members)" | sort -u || true
  )
  for role in "$BACKEND_ROLE_ID" "$DEPLOYER_ROLE_ID" "$DEPLOYER_RUN_ROLE_ID"; do
    # A deleted role still answers describe for 7 days, marked deleted: leave it so.
    if [[ "$DRY_RUN" == 1 ]] || [[ "$(query gcloud iam roles describe "$role" \
      --project="$PROJECT_ID" --format='value(deleted)' || printf gone)" == "" ]]; then
      run gcloud iam roles delete "$role" --project="$PROJECT_ID" --quiet
    fi
  done
}

teardown_accounts() {
  note "service accounts"
  local id
  for id in "$BACKEND_SA_ID" "$PREDICTOR_SA_ID" "$PUSH_INVOKER_SA_ID" "$DEPLOYER_SA_ID"; do
    if present gcloud iam service-accounts describe "$(sa_email "$id")" --project="$PROJECT_ID"; then
      run gcloud iam service-accounts delete "$(sa_email "$id")" --project="$PROJECT_ID" --quiet
    fi
  done
}

teardown_registry() {
  note "Artifact Registry repository $AR_REPOSITORY with every image, and the source bucket" \
    "$BUILD_SOURCE_BUCKET with every object (other builds of the project stage there too)"
  if present gcloud artifacts repositories describe "$AR_REPOSITORY" --location="$REGION" \
    --project="$PROJECT_ID"; then
    run gcloud artifacts repositories delete "$AR_REPOSITORY" --location="$REGION" \
      --project="$PROJECT_ID" --quiet
  fi
  if present gcloud storage buckets describe "$BUILD_SOURCE_BUCKET" --project="$PROJECT_ID"; then
    run gcloud storage rm --recursive "$BUILD_SOURCE_BUCKET" --project="$PROJECT_ID"
  fi
}

selected=("${SECTIONS[@]}")
if [[ -n "$only" ]]; then
  IFS=',' read -r -a selected <<<"$only"
  for section in ${selected[@]+"${selected[@]}"}; do
    [[ " ${SECTIONS[*]} " == *" $section "* ]] || die "unknown section '$section' (${SECTIONS[*]})"
  done
fi
chosen() { [[ " ${selected[*]-} " == *" $1 "* ]]; }

if [[ "$DRY_RUN" != 1 && "$YES" != 1 ]]; then
  printf 'This deletes, in project %s: %s.\n' "$PROJECT_ID" "${selected[*]-}" >&2
  printf 'See the full plan first with --dry-run. Type the project id to go on: ' >&2
  read -r answer || answer=""
  [[ "$answer" == "$PROJECT_ID" ]] || die "nothing deleted"
  if chosen secrets && ((!KEEP_SECRETS)); then
    printf 'Delete the secrets %s and %s, with the AWS keys they hold? [y/N] ' \
      "$SECRET_AWS_ACCESS_KEY_ID" "$SECRET_AWS_SECRET_ACCESS_KEY" >&2
    read -r answer || answer=""
    [[ "$answer" == y || "$answer" == Y || "$answer" == yes ]] || KEEP_SECRETS=1
  fi
fi

for section in "${SECTIONS[@]}"; do
  if chosen "$section"; then "teardown_$section"; fi
done
note "done: project $PROJECT_ID (its APIs stay enabled: they cost nothing unused)"
