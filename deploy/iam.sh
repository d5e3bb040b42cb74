# shellcheck shell=bash
# Who may do what. Every grant is on the one resource it is about, except four that cannot be:
# the backend's custom role (it creates subscriptions whose names exist only at runtime), its
# datastore.user (Firestore takes IAM policies on projects only, so an IAM condition narrows it to
# the one database), and the deployer's service role and logging.logWriter (the services do not exist
# before the first deploy, and build logs are written to the project). docs/deploy.md explains
# each grant.

# Creating, pulling from and deleting its own per-process results subscriptions. No predefined
# role is this narrow: roles/pubsub.editor would also let it delete topics.
# `get` lets the listener confirm that Pub/Sub accepted its stream (ready means accepted).
BACKEND_ROLE_PERMISSIONS="pubsub.subscriptions.consume,pubsub.subscriptions.create"
BACKEND_ROLE_PERMISSIONS+=",pubsub.subscriptions.delete,pubsub.subscriptions.get"
# Pointing the push subscription at the predictor (and setting its ack deadline) is an update of
# that one subscription; roles/pubsub.editor on it would also let the deployer delete it, pull
# from it and change its IAM policy.
# https://cloud.google.com/pubsub/docs/access-control#permissions
DEPLOYER_ROLE_PERMISSIONS="pubsub.subscriptions.get,pubsub.subscriptions.update"
# Deploying the two services and setting their IAM policies, in place of roles/run.admin (which
# can also delete any service of the project). Each gcloud call of the build needs (checked in
# tests/deploy/test_setup_plan.py against every call cloudbuild.yaml and rollout_predictor.sh
# make): run deploy, services.create or .update after .get, its progress read from the service,
# its revisions and operations; --[no-]allow-unauthenticated, --invoker-iam-check and
# add-iam-policy-binding, services.getIamPolicy and .setIamPolicy; services describe, .get.
# https://cloud.google.com/run/docs/reference/iam/permissions
# https://cloud.google.com/run/docs/authenticating/public
DEPLOYER_RUN_ROLE_PERMISSIONS="run.services.create,run.services.get,run.services.update"
DEPLOYER_RUN_ROLE_PERMISSIONS+=",run.services.getIamPolicy,run.services.setIamPolicy"
DEPLOYER_RUN_ROLE_PERMISSIONS+=",run.operations.get,run.revisions.get,run.revisions.list"

# Whether the Pub/Sub service agent needs roles/iam.serviceAccountTokenCreator on the push
# invoker to mint its OIDC tokens: only agents created before 8 April 2021 do
# (https://cloud.google.com/run/docs/tutorials/pubsub#integrating-pubsub). auto grants it when
# the project itself is older than that (its agent may be), and removes it otherwise.
PUBSUB_AGENT_TOKEN_CREATOR="${PUBSUB_AGENT_TOKEN_CREATOR:-auto}"
TOKEN_CREATOR_CUTOFF=2021-04-08

project_number() {
  if [[ -n "${PROJECT_NUMBER:-}" ]]; then
    printf '%s' "$PROJECT_NUMBER"
  elif [[ "$DRY_RUN" == 1 ]]; then
    printf 'PROJECT_NUMBER'
  else
    gcloud projects describe "$PROJECT_ID" --format='value(projectNumber)'
  fi
}

sorted_list() { tr ',' '\n' <<<"$1" | sort | paste -sd, -; }

# Create a project-level custom role, or repair one: undelete it if it was deleted (a deleted
# role still answers describe for 7 days, marked deleted, and its id cannot be reused for 37),
# and set its permissions when they drifted. Says what it changed.
# https://cloud.google.com/iam/docs/creating-custom-roles#deleting-custom-role
ensure_custom_role() {
  local role="$1" title="$2" description="$3" permissions="$4" have deleted
  if ! exists gcloud iam roles describe "$role" --project="$PROJECT_ID"; then
    run gcloud iam roles create "$role" --project="$PROJECT_ID" --stage=GA --title="$title" \
      --description="$description" --permissions="$permissions"
    return
  fi
  IFS='|' read -r deleted have < <(
    query gcloud iam roles describe "$role" --project="$PROJECT_ID" \
      --format="value[separator='|'](deleted,includedPermissions)"
  ) || true
  if [[ "$deleted" == True ]]; then
    note "custom role $role was deleted: undeleting it"
    run gcloud iam roles undelete "$role" --project="$PROJECT_ID"
  fi
  # gcloud lists the permissions separated by ';'.
  if [[ "$(sorted_list "${have//;/,}")" != "$(sorted_list "$permissions")" ]]; then
    note "custom role $role: permissions set to $permissions (it had ${have//;/,})"
    run gcloud iam roles update "$role" --project="$PROJECT_ID" --permissions="$permissions"
  fi
}

# The project-level grants setup makes, one "member|role" a line (teardown removes them).
project_grants() {
  printf '%s|%s\n' \
    "serviceAccount:$BACKEND_SA" "projects/$PROJECT_ID/roles/$BACKEND_ROLE_ID" \
    "serviceAccount:$BACKEND_SA" roles/datastore.user \
    "serviceAccount:$DEPLOYER_SA" "projects/$PROJECT_ID/roles/$DEPLOYER_RUN_ROLE_ID" \
    "serviceAccount:$DEPLOYER_SA" roles/logging.logWriter \
    "serviceAccount:$BACKEND_SA" roles/cloudtrace.agent \
    "serviceAccount:$PREDICTOR_SA" roles/cloudtrace.agent
}

# Grant the Pub/Sub service agent the token creator role on the push invoker where it needs it
# (see PUBSUB_AGENT_TOKEN_CREATOR), and take it away where it does not.
ensure_agent_token_creator() {
  local agent="$1" role=roles/iam.serviceAccountTokenCreator created needed
  case "$PUBSUB_AGENT_TOKEN_CREATOR" in
    true) needed=1 ;;
    false) needed=0 ;;
    auto)
      created="$(query gcloud projects describe "$PROJECT_ID" --format='value(createTime)' || true)"
      if [[ -z "$created" && "$DRY_RUN" == 1 ]]; then
        note "(granted only if the project was created before $TOKEN_CREATOR_CUTOFF)"
        return
      fi
      # Unknown age: grant, so that push keeps working.
      needed=1
      if [[ -n "$created" && ! "$created" < "$TOKEN_CREATOR_CUTOFF" ]]; then needed=0; fi
      ;;
    *) die "PUBSUB_AGENT_TOKEN_CREATOR=$PUBSUB_AGENT_TOKEN_CREATOR: use auto, true or false" ;;
  esac
  if ((needed)); then
    grant_service_account "$PUSH_INVOKER_SA" "$agent" "$role"
  elif query gcloud iam service-accounts get-iam-policy "$PUSH_INVOKER_SA" \
    --project="$PROJECT_ID" --flatten='bindings[].members' \
    --format="value[separator='|'](bindings.role,bindings.members)" | grep -qx "$role|$agent"; then
    note "the Pub/Sub service agent no longer needs $role on $PUSH_INVOKER_SA: removing it"
    run gcloud iam service-accounts remove-iam-policy-binding "$PUSH_INVOKER_SA" \
      --member="$agent" --role="$role" --project="$PROJECT_ID"
  fi
}

# Each grant is idempotent: adding a binding that exists leaves the policy as it is.
grant_project() {
  # The condition defaults to None: without one gcloud refuses to add to a policy that has
  # conditional bindings, which this one has (firestore_condition).
  run_retrying gcloud projects add-iam-policy-binding "$PROJECT_ID" --member="$1" --role="$2" \
    --condition="${3:-None}"
}
# Limits a project-level Firestore grant to the one database, as Firestore documents it:
# https://cloud.google.com/firestore/native/docs/manage-databases#configure_per-database_access_permissions
# The title and description are part of the binding: changing them adds a second binding.
firestore_condition() {
  printf 'expression=resource.name=="projects/%s/databases/%s",title=%s,description=%s' \
    "$PROJECT_ID" "$FIRESTORE_DATABASE" "ride state database only" \
    "Documents of the Firestore database holding ride state"
}
grant_topic() {
  run_retrying gcloud pubsub topics add-iam-policy-binding "$1" --member="$2" --role="$3" \
    --project="$PROJECT_ID"
}
grant_subscription() {
  run_retrying gcloud pubsub subscriptions add-iam-policy-binding "$1" --member="$2" \
    --role="$3" --project="$PROJECT_ID"
}
grant_secret() {
  run_retrying gcloud secrets add-iam-policy-binding "$1" --member="$2" --role="$3" \
    --project="$PROJECT_ID"
}
grant_service_account() {
  run_retrying gcloud iam service-accounts add-iam-policy-binding "$1" --member="$2" \
    --role="$3" --project="$PROJECT_ID"
}
grant_repository() {
  run_retrying gcloud artifacts repositories add-iam-policy-binding "$1" --location="$REGION" \
    --member="$2" --role="$3" --project="$PROJECT_ID"
}
grant_bucket() {
  run_retrying gcloud storage buckets add-iam-policy-binding "$1" --member="$2" --role="$3" \
    --project="$PROJECT_ID"
}

setup_iam() {
  local backend="serviceAccount:$BACKEND_SA" predictor="serviceAccount:$PREDICTOR_SA"
  local deployer="serviceAccount:$DEPLOYER_SA" number pubsub_agent
  number="$(project_number || true)"
  [[ -n "$number" ]] || die "cannot read the project number of $PROJECT_ID (set PROJECT_NUMBER)"
  pubsub_agent="serviceAccount:service-$number@gcp-sa-pubsub.iam.gserviceaccount.com"

  note "custom roles: the backend's results subscriptions, the deployer's push endpoint and" \
    "its services"
  ensure_custom_role "$BACKEND_ROLE_ID" "ride backend results subscriptions" \
    "Create, pull from and delete per-process results subscriptions" "$BACKEND_ROLE_PERMISSIONS"
  ensure_custom_role "$DEPLOYER_ROLE_ID" "ride push subscription updater" \
    "Read and repoint the push subscription feeding the predictor" "$DEPLOYER_ROLE_PERMISSIONS"
  ensure_custom_role "$DEPLOYER_RUN_ROLE_ID" "ride service deployer" \
    "Deploy the ride services and set their IAM policies" "$DEPLOYER_RUN_ROLE_PERMISSIONS"

  note "backend: publish rides; create, pull from and delete its own results subscriptions"
  grant_project "$backend" "projects/$PROJECT_ID/roles/$BACKEND_ROLE_ID"
  grant_topic "$RIDES_TOPIC" "$backend" roles/pubsub.publisher
  # On a topic, roles/pubsub.subscriber grants only pubsub.topics.attachSubscription.
  grant_topic "$RESULTS_TOPIC" "$backend" roles/pubsub.subscriber

  note "backend: read and write ride documents in $FIRESTORE_DATABASE, pull from the recorder"
  # The narrowest predefined role that reads and writes documents: no database, index, TTL,
  # import or export administration.
  grant_project "$backend" roles/datastore.user "$(firestore_condition)"
  grant_subscription "$RECORDER_SUBSCRIPTION" "$backend" roles/pubsub.subscriber

  note "predictor: publish results and dead letters, read its two secrets"
  grant_topic "$RESULTS_TOPIC" "$predictor" roles/pubsub.publisher
  grant_topic "$DEAD_LETTER_TOPIC" "$predictor" roles/pubsub.publisher
  grant_secret "$SECRET_AWS_ACCESS_KEY_ID" "$predictor" roles/secretmanager.secretAccessor
  grant_secret "$SECRET_AWS_SECRET_ACCESS_KEY" "$predictor" roles/secretmanager.secretAccessor

  note "both runtimes: write spans to Cloud Trace (granted on the project: Cloud Trace has no finer)"
  grant_project "$backend" roles/cloudtrace.agent
  grant_project "$predictor" roles/cloudtrace.agent

  note "Pub/Sub service agent: forward dead letters; mint the push invoker's OIDC tokens if" \
    "it predates $TOKEN_CREATOR_CUTOFF"
  grant_topic "$DEAD_LETTER_TOPIC" "$pubsub_agent" roles/pubsub.publisher
  grant_subscription "$PUSH_SUBSCRIPTION" "$pubsub_agent" roles/pubsub.subscriber
  ensure_agent_token_creator "$pubsub_agent"

  note "deployer (Cloud Build): push images, deploy both services as their own accounts"
  # A custom role rather than run.admin: the build creates, reads and updates the two services
  # and sets their IAM policies (public backend, invoker on the predictor), on services that do
  # not exist before the first deploy; it never deletes one.
  grant_project "$deployer" "projects/$PROJECT_ID/roles/$DEPLOYER_RUN_ROLE_ID"
  # Builds run with a user-chosen account must write their logs to Cloud Logging themselves.
  grant_project "$deployer" roles/logging.logWriter
  grant_repository "$AR_REPOSITORY" "$deployer" roles/artifactregistry.writer
  grant_bucket "$BUILD_SOURCE_BUCKET" "$deployer" roles/storage.objectViewer
  grant_service_account "$BACKEND_SA" "$deployer" roles/iam.serviceAccountUser
  grant_service_account "$PREDICTOR_SA" "$deployer" roles/iam.serviceAccountUser
  # Setting a push subscription's OIDC account requires acting as that account.
  grant_service_account "$PUSH_INVOKER_SA" "$deployer" roles/iam.serviceAccountUser
  # Pointing the push subscription at the predictor is an update of that one subscription.
  grant_subscription "$PUSH_SUBSCRIPTION" "$deployer" "projects/$PROJECT_ID/roles/$DEPLOYER_ROLE_ID"
  # The build's check step confirms each secret has an enabled version before the deploy names
  # it; the viewer role reads versions' metadata, never their values.
  # https://cloud.google.com/secret-manager/docs/access-control
  grant_secret "$SECRET_AWS_ACCESS_KEY_ID" "$deployer" roles/secretmanager.viewer
  grant_secret "$SECRET_AWS_SECRET_ACCESS_KEY" "$deployer" roles/secretmanager.viewer
  note "push invoker: roles/run.invoker on $PREDICTOR_SERVICE, granted by cloudbuild.yaml" \
    "once that service exists"
}
