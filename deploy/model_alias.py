"""Pin the model a revision serves, and move the registry aliases that say which version serves.

Run by deploy/ship_model.sh and deploy/pin_model.sh, with MLFLOW_TRACKING_URI set for a
registry URI:
  python deploy/model_alias.py pin URI            print what a revision made now loads, as
                                                  MODEL_URI=... and MODEL_VERSION=... lines
  python deploy/model_alias.py candidate URI      the same, and point the candidate alias at
                                                  URI's version
  python deploy/model_alias.py promote NAME       production -> candidate's version, previous ->
                                                  the version production had
  python deploy/model_alias.py rollback NAME      production -> previous's version

Pinning: a registry alias is resolved to its version, and the version to its model folder when
that folder is on S3 (MODEL_URI=s3://..., which the predictor copies without importing MLflow);
elsewhere (a tracking server that serves the artifacts itself) the revision gets
models:/NAME/N, as it does for models:/NAME/N without MLFLOW_TRACKING_URI. A runs:/ URI or a
folder is a fixed model already: printed as given. MLflow is imported only to ask the registry.
"""

import os
import re
import sys
from typing import Any

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")
RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/")
CANDIDATE, PRODUCTION, PREVIOUS = "candidate", "production", "previous"
# Where the predictor copies a folder with botocore alone (predictor_service/fetch.py).
LEAN_SCHEMES = ("s3://",)


def version_of(client: Any, name: str, alias: str) -> str:
    return str(client.get_model_version_by_alias(name, alias).version)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def pin(target: str, move_candidate: bool = False) -> tuple[str, str]:
    """(what the revision loads, its version) for `target`; move the candidate alias if asked."""
    match = REGISTRY_URI.match(target)
    if match is None:
        if target.startswith("models:"):
            # models:/NAME/latest or a stage would be resolved again by every instance
            raise SystemExit(f"{target}: pin models:/NAME/N or models:/NAME@ALIAS")
        runs = RUNS_URI.match(target)
        return target, f"run:{runs['run_id']}" if runs else ""
    name = match["name"]
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        if match["alias"] or move_candidate:
            raise SystemExit(f"{target}: set MLFLOW_TRACKING_URI, the registry that resolves it")
        # no registry to ask for the folder: the revision reads the version through MLflow
        return target, f"{name}/{match['version']}"
    registry = client()
    version = match["version"] or version_of(registry, name, match["alias"])
    if move_candidate:
        registry.set_registered_model_alias(name, CANDIDATE, version)
    folder = str(registry.get_model_version_download_uri(name, version))
    loads = folder.rstrip("/") if folder.startswith(LEAN_SCHEMES) else f"models:/{name}/{version}"
    return loads, f"{name}/{version}"


def main(argv: list[str]) -> int:
    command, target = argv
    if command in ("pin", CANDIDATE):
        loads, version = pin(target, move_candidate=command == CANDIDATE)
        say(f"MODEL_URI={loads}")
        say(f"MODEL_VERSION={version}")
    elif command == "promote":
        registry = client()
        serving = version_of(registry, target, PRODUCTION)
        promoted = version_of(registry, target, CANDIDATE)
        registry.set_registered_model_alias(target, PREVIOUS, serving)
        registry.set_registered_model_alias(target, PRODUCTION, promoted)
        say(f"{target}: production {serving} -> {promoted}")
    elif command == "rollback":
        registry = client()
        back = version_of(registry, target, PREVIOUS)
        registry.set_registered_model_alias(target, PRODUCTION, back)
        say(f"{target}: production -> {back}")
    else:
        sys.stderr.write(__doc__ or "")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
