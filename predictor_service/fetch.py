"""Resolve an MLflow model URI and download its folder, in a child process that then exits.

`python predictor_service/fetch.py URI DEST` prints one JSON line, `{"folder", "version"}`.
MLflow's client (and SQLAlchemy, boto3, ...) stays in the child: the worker that serves the
model reads a local folder and never imports MLflow for a model that does not need it.
Run by path, not with -m: -m would import the predictor package (Flask, gRPC, numpy) first.
This file imports nothing from the package for the same reason.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

_MODELS_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_MODELS_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_RUNS = re.compile(r"^runs:/(?P<run_id>[^/]+)/")
# Cloud Run's startup probe gives a revision at most 240 s to become ready.
TIMEOUT_S = 240.0
ERROR_CHARS = 1500


class FetchError(RuntimeError):
    """The child could not resolve or download the model; the message says why."""


def fetch_in_child(uri: str, dest: Path, timeout_s: float = TIMEOUT_S) -> tuple[Path, str | None]:
    """Download `uri` into `dest` in a child process; return the folder and the version."""
    argv = [sys.executable, str(Path(__file__).resolve()), uri, str(dest)]
    try:
        child = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as err:
        raise FetchError(f"downloading {uri!r} took more than {timeout_s:g} s") from err
    if child.returncode != 0:
        raise FetchError(child.stderr.strip()[-ERROR_CHARS:] or f"exit code {child.returncode}")
    found = json.loads(child.stdout.strip().splitlines()[-1])
    return Path(found["folder"]), found["version"]


def pin(uri: str) -> tuple[str, str | None]:
    """Resolve a registry alias to its version, so the version reported is the one loaded."""
    if match := _MODELS_ALIAS.match(uri):
        from mlflow import MlflowClient

        name = match["name"]
        version = MlflowClient().get_model_version_by_alias(name, match["alias"]).version
        return f"models:/{name}/{version}", f"{name}/{version}"
    if match := _MODELS_VERSION.match(uri):
        return uri, f"{match['name']}/{match['version']}"
    if match := _RUNS.match(uri):
        return uri, f"run:{match['run_id']}"
    return uri, None


def main(argv: list[str]) -> int:
    """Download argv's URI into argv's folder; print the folder and version as JSON."""
    uri, dest = argv
    try:
        import mlflow.artifacts

        pinned, version = pin(uri)
        folder = mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=dest)
    except Exception as err:  # MLflow and boto3 raise many unrelated types; the parent says which
        sys.stderr.write(f"cannot download model {uri!r}: {type(err).__name__}: {err}\n")
        return 1
    sys.stdout.write(json.dumps({"folder": folder, "version": version}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
