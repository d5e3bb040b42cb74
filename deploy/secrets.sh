# shellcheck shell=bash
# Secret Manager: the AWS keys of the MLflow S3 artifact store, read by the predictor.
#
# The values come from MLFLOW_AWS_ACCESS_KEY_ID and MLFLOW_AWS_SECRET_ACCESS_KEY, not from
# AWS_ACCESS_KEY_ID: an operator's own AWS keys are often exported in the shell and must not be
# uploaded by accident. A value reaches gcloud on stdin only, never in argv (visible in `ps`),
# the dry-run plan or a log line.

# Print the command that adds a version, marking where its stdin comes from.
describe_add_version() {
  printf '%s  # stdin: value of $%s\n' \
    "$(quote_cmd gcloud secrets versions add "$1" --data-file=- --project="$PROJECT_ID")" "$2"
}

# Succeed when the secret's latest version already holds the variable's value.
latest_version_matches() {
  local secret="$1" var="$2"
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '# check: latest version of %s equals $%s\n' "$secret" "$var"
    return 1
  fi
  # printf is a shell builtin, so the value never becomes a process argument.
  cmp -s <(gcloud secrets versions access latest --secret="$secret" --project="$PROJECT_ID" \
    2>/dev/null) <(printf '%s' "${!var}")
}

ensure_secret() {
  local secret="$1" var="$2"
  if ! exists gcloud secrets describe "$secret" --project="$PROJECT_ID"; then
    run gcloud secrets create "$secret" --replication-policy=automatic --project="$PROJECT_ID"
  fi
  if [[ -z "${!var:-}" ]]; then
    note "$var is not set: $secret keeps its versions (the predictor needs at least one)"
    return
  fi
  # Adding the same value again would create a new version on every run.
  latest_version_matches "$secret" "$var" && return
  if [[ "$DRY_RUN" == 1 ]]; then
    describe_add_version "$secret" "$var"
    return
  fi
  printf '+ %s\n' "$(describe_add_version "$secret" "$var")" >&2
  printf '%s' "${!var}" |
    gcloud secrets versions add "$secret" --data-file=- --project="$PROJECT_ID" >/dev/null
}

setup_secrets() {
  note "Secret Manager secrets for the MLflow artifact store's AWS keys"
  ensure_secret "$SECRET_AWS_ACCESS_KEY_ID" MLFLOW_AWS_ACCESS_KEY_ID
  ensure_secret "$SECRET_AWS_SECRET_ACCESS_KEY" MLFLOW_AWS_SECRET_ACCESS_KEY
}
