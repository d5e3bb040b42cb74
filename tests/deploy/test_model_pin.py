"""The build's pin-model step, then its predictor deploy: the revision gets the version an alias
names when the build runs, as that version's s3:// folder, whatever the alias does later."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.kit import cloudbuild
from tests.kit.deploy_scripts import (
    ROLLOUT,
    ROOT,
    base_env,
    command,
    dry_run,
    env_vars,
    run_script,
)

FOLDER = "s3://mlflow-artifacts/mlflow/1/models/m-9f3e/artifacts"
# A registered model whose version 2, under `production`, MLflow 3 keeps in an S3 folder.
REGISTER = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
client.create_registered_model("ride-duration")
client.create_model_version("ride-duration", source="s3://mlflow-artifacts/mlflow/1/old")
client.create_model_version("ride-duration", source=sys.argv[2])
client.set_registered_model_alias("ride-duration", "production", "2")
"""


def pin_step(out: Path, **substitutions: str) -> subprocess.CompletedProcess[str]:
    """Run the pin-model step as the build does, its file written to `out`."""
    step = cloudbuild.step(cloudbuild.load(), "pin-model")
    expanded = cloudbuild.default_values(**substitutions)
    env = dict(cloudbuild.substitute(e, expanded).split("=", 1) for e in step["env"])
    script, _ = step["args"]
    return run_script(ROOT / script, str(out), env=base_env(PYTHON=sys.executable) | env)


def deployed_model(pin: Path, **substitutions: str) -> dict[str, str]:
    """MODEL_URI and MODEL_VERSION of the revision the deploy step makes from `pin`."""
    step_args = cloudbuild.step(cloudbuild.load(), "deploy-predictor")["args"][1:]
    args = [a.replace("model-pin.env", str(pin)) for a in step_args]
    env = base_env() | cloudbuild.predictor_step_env(**substitutions)
    deployed = env_vars(command(dry_run(ROLLOUT, *args, env=env), "gcloud", "run", "deploy"))
    return {name: deployed.get(name, "") for name in ("MODEL_URI", "MODEL_VERSION")}


@pytest.mark.slow
def test_the_build_deploys_the_version_the_alias_names_as_its_s3_folder(tmp_path: Path) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    subprocess.run([sys.executable, "-c", REGISTER, tracking, FOLDER], check=True, timeout=120)
    pin = tmp_path / "model-pin.env"

    done = pin_step(pin, _MLFLOW_TRACKING_URI=tracking)

    assert done.returncode == 0, done.stderr
    deployed = deployed_model(pin, _MLFLOW_TRACKING_URI=tracking)
    assert deployed == {"MODEL_URI": FOLDER, "MODEL_VERSION": "ride-duration/2"}


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        (FOLDER, ""),  # a folder: its MLmodel names the version
        ("runs:/0123abcd/model", "run:0123abcd"),
        ("/app/model", ""),
    ],
)
def test_a_fixed_model_is_deployed_as_given_without_mlflow(
    tmp_path: Path, uri: str, version: str
) -> None:
    pin = tmp_path / "model-pin.env"

    done = pin_step(pin, _MODEL_URI=uri, _MLFLOW_TRACKING_URI="https://mlflow.example.com")

    assert done.returncode == 0, done.stderr
    assert pin.read_text() == f"MODEL_URI={uri}\nMODEL_VERSION={version}\n"


def test_an_alias_without_a_registry_stops_the_build_before_any_deploy(tmp_path: Path) -> None:
    done = pin_step(tmp_path / "model-pin.env")

    assert done.returncode != 0
    assert "set MLFLOW_TRACKING_URI, the registry that resolves it" in done.stderr
    assert not (tmp_path / "model-pin.env").exists()
