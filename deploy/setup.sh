#!/usr/bin/env bash
# One-time, idempotent provisioning of a GCP project for the ride-duration services.
# Usage: deploy/setup.sh [--dry-run] [--only SECTION[,SECTION...]]
# Sections, in order: apis registry accounts pubsub firestore secrets iam monitoring
# (default: all).
# Names come from deploy/config.sh; set PROJECT_ID (or CLOUDSDK_CORE_PROJECT) first.
# See docs/deploy.md.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SECTIONS=(apis registry accounts pubsub firestore secrets iam monitoring)

usage() { sed -n '2,7s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

only=""
while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
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
# shellcheck source=deploy/project.sh
source "$DEPLOY_DIR/project.sh"
# shellcheck source=deploy/pubsub.sh
source "$DEPLOY_DIR/pubsub.sh"
# shellcheck source=deploy/firestore.sh
source "$DEPLOY_DIR/firestore.sh"
# shellcheck source=deploy/secrets.sh
source "$DEPLOY_DIR/secrets.sh"
# shellcheck source=deploy/iam.sh
source "$DEPLOY_DIR/iam.sh"
# shellcheck source=deploy/monitoring.sh
source "$DEPLOY_DIR/monitoring.sh"

[[ -n "$PROJECT_ID" ]] || die "set PROJECT_ID (or CLOUDSDK_CORE_PROJECT) to the target project"

selected=("${SECTIONS[@]}")
if [[ -n "$only" ]]; then
  IFS=',' read -r -a selected <<<"$only"
  for section in ${selected[@]+"${selected[@]}"}; do
    [[ " ${SECTIONS[*]} " == *" $section "* ]] || die "unknown section '$section' (${SECTIONS[*]})"
  done
fi

# Sections always run in dependency order, whatever order --only lists them in.
for section in "${SECTIONS[@]}"; do
  if [[ " ${selected[*]-} " == *" $section "* ]]; then "setup_$section"; fi
done
note "done: project $PROJECT_ID"
