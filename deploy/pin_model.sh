#!/usr/bin/env bash
# Pin the model of the predictor's next revision: cloudbuild.yaml's pin-model step writes FILE
# while the images build, and deploy/rollout_predictor.sh --model-pin=FILE deploys what it says.
# Usage: MODEL_URI=... [MLFLOW_TRACKING_URI=...] deploy/pin_model.sh FILE
#
# FILE holds two lines, MODEL_URI=... and MODEL_VERSION=... (deploy/model_alias.py pin): a
# registry alias resolved to its version now, and that version to its s3:// folder, so that
# every instance of the revision serves that one version and starts without importing MLflow.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-}"
[[ -n "$out" ]] || { sed -n '4s/^# //p' "${BASH_SOURCE[0]}" >&2; exit 2; }
: "${MODEL_URI:?MODEL_URI says which model the predictor loads}"
PYTHON="${PYTHON:-python3}"

if [[ "$MODEL_URI" == models:* ]] && ! "$PYTHON" -c 'import mlflow' 2>/dev/null; then
  # The build's step runs a bare Python image: add the MLflow client the predictor image pins.
  requirement="$(grep '^mlflow-skinny==' "$DEPLOY_DIR/../predictor_service/requirements.txt")"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip install --quiet --no-cache-dir \
    --root-user-action=ignore "$requirement"
fi
"$PYTHON" "$DEPLOY_DIR/model_alias.py" pin "$MODEL_URI" >"$out.partial"
mv "$out.partial" "$out"
printf 'pinned %s:\n%s\n' "$MODEL_URI" "$(cat "$out")" >&2
