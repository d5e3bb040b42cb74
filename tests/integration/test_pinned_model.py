"""A revision's pinned model: a registry version's s3:// folder, copied with botocore alone (no
MLflow import anywhere on the start path) and served under the version the revision was made
with. The folder is the real trained MLflow model, on moto's S3 server.
"""

import json
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import requests

from devstack.stack import start_isolated
from predictor_service.model import ModelLoadError, load_model
from tests.kit.rides import ride_message
from tests.kit.s3 import AWS_ENV, BUCKET, s3_client
from tests.kit.stream import answer

# Seconds, not milliseconds: trains the model, starts moto and a predictor.
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
FETCH = ROOT / "predictor_service" / "fetch.py"
PINNED = "ride-duration/7"
# RIDE's pickup (tests.kit.rides): naive, New York wall-clock time, as the predictor reads it.
PICKUP = datetime(2021, 2, 3, 8, 30)


@pytest.fixture
def s3_folder(s3_endpoint: str, trained_model) -> str:  # type: ignore[no-untyped-def]
    """The trained model's folder in the bucket, laid out as MLflow 3 stores a logged model."""
    prefix = f"mlflow/1/models/m-{uuid.uuid4().hex[:12]}/artifacts"
    client = s3_client(s3_endpoint)
    for path in sorted(trained_model.folder.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(trained_model.folder).as_posix()}"
            client.upload_file(str(path), BUCKET, key)
    return f"s3://{BUCKET}/{prefix}"


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What a deployed predictor has: the keys and the endpoint, and no tracking server."""
    env = {**AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env}


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_the_download_child_copies_the_folder_without_importing_mlflow(
    s3_folder: str, s3_env: dict[str, str], trained_model, tmp_path: Path
) -> None:
    argv = [sys.executable, "-X", "importtime", str(FETCH), s3_folder, str(tmp_path / "dest")]
    done = subprocess.run(argv, env=s3_env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "botocore" in imported
    assert sorted(name for name in imported if name.split(".")[0] == "mlflow") == []
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["version"] is None  # the folder names no version: the revision's pin does
    assert files(Path(found["folder"])) == files(trained_model.folder)


def test_the_worker_loads_the_folder_as_its_pinned_version_without_mlflow_or_boto3(
    s3_folder: str, s3_env: dict[str, str]
) -> None:
    script = (
        "import json, sys\n"
        "from predictor_service.model import load_model\n"
        "model = load_model(sys.argv[1], pinned_version=sys.argv[2])\n"
        "heavy = {'mlflow', 'boto3', 'botocore', 'sqlalchemy'}\n"
        "loaded = sorted({name.split('.')[0] for name in sys.modules} & heavy)\n"
        "print(json.dumps({'version': model.version, 'loaded': loaded}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, s3_folder, PINNED],
        env=s3_env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"version": PINNED, "loaded": []}


def test_the_predictor_answers_a_push_with_the_version_it_was_made_with(
    emulator, s3_folder: str, s3_env: dict[str, str], trained_model, tmp_path: Path
) -> None:
    service_env = {k: v for k, v in s3_env.items() if k not in ("PATH", "PYTHONPATH")}
    stack = start_isolated(
        emulator, tmp_path, backends=0, model_uri=s3_folder, tracking_uri="",
        service_env={**service_env, "MODEL_VERSION": PINNED},
    )  # fmt: skip
    try:
        ready = requests.get(f"{stack.predictor.url}/readyz", timeout=5).json()
        result = answer(stack, ride_message("r-pinned"), ride_id="r-pinned", reply_to="me")
    finally:
        stack.stop()

    body = json.loads(result.data)
    assert ready["model_version"] == PINNED
    assert body["model_version"] == PINNED
    original = load_model(str(trained_model.folder))
    assert body["duration_final"] == original.duration(74, 75, 2.5, PICKUP)
    assert "testing" not in stack.predictor.process.log_tail(500)  # no key in the logs


def test_a_folder_with_nothing_in_it_is_refused_naming_it(s3_env: dict[str, str]) -> None:
    empty = f"s3://{BUCKET}/mlflow/1/models/m-absent/artifacts"

    with pytest.raises(ModelLoadError, match=f"no objects under {empty}"):
        load_model(empty, pinned_version=PINNED)
