"""Which model a registry alias points to, asked in a child process that alone imports MLflow."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def describe(name: str, alias: str) -> dict[str, Any] | None:
    """Return the version under `alias` and its run's figures; None if the alias is unset."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    run = client.get_run(version.run_id) if version.run_id else None
    return {
        "uri": f"models:/{version.name}/{version.version}",
        "version": version.version,
        # MLflow 3 leaves model_id empty here; the source is models:/<model id>.
        "model_id": version.model_id or (version.source or "").removeprefix("models:/"),
        "run_id": version.run_id,
        "metrics": run.data.metrics if run else {},
        "params": run.data.params if run else {},
    }


def lookup(tracking_uri: str, name: str, alias: str) -> dict[str, Any] | None:
    """Run `describe` in a child process on `tracking_uri`; None if the alias is unset."""
    probe = subprocess.run(
        [sys.executable, "-m", "devstack.registry", name, alias],
        env=_env(tracking_uri), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return None
    return json.loads(probe.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def train(
    tracking_uri: str, artifact_location: str, name: str, alias: str, quiet: bool = False,
    module: str = "training.train",
) -> None:  # fmt: skip
    """Train the default model (or run another training `module`), register it as `name`@`alias`."""
    subprocess.run(
        [sys.executable, "-m", module, "--tracking-uri", tracking_uri,
         "--artifact-location", artifact_location, "--model-name", name, "--alias", alias],
        env=_env(tracking_uri), cwd=ROOT, check=True, timeout=900,
        stdout=subprocess.DEVNULL if quiet else None,
    )  # fmt: skip


def train_course(tracking_uri: str, artifact_location: str, name: str, alias: str) -> None:
    """Log the course's baseline and register it under `name`@`alias`."""
    train(tracking_uri, artifact_location, name, alias, quiet=True, module="training.course")


def _env(tracking_uri: str) -> dict[str, str]:
    return dict(os.environ) | {"MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(ROOT)}


def main(argv: list[str] | None = None) -> int:
    """Write the alias's model as one JSON line; exit 1 if the alias is unset."""
    name, alias = sys.argv[1:] if argv is None else argv
    described = describe(name, alias)
    if described is None:
        return 1
    sys.stdout.write(json.dumps(described) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
