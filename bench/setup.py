"""What the scenarios run against: the bench's own model, rides, and stacks on free ports."""

import base64
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from devstack.emulator import Emulator
from devstack.processes import free_port
from devstack.stack import ROOT, Service, Settings, isolated_settings

WORKDIR = ROOT / ".local" / "bench"
TRACKING_URI = f"sqlite:///{WORKDIR / 'mlflow.db'}"
ARTIFACTS = WORKDIR / "mlartifacts"
PROJECT = "bench-project"
MODEL_NAME = "ride-duration"
ALIAS = "production"

_DESCRIBE = """
import json, sys
from mlflow import MlflowClient
client = MlflowClient()
version = client.get_model_version_by_alias(sys.argv[1], sys.argv[2])
run = client.get_run(version.run_id)
# MLflow 3 leaves model_id empty here; the source is models:/<model id>.
model_id = version.model_id or version.source.removeprefix("models:/")
print(json.dumps({"version": version.version, "model_id": model_id,
                  "run_id": version.run_id, "metrics": run.data.metrics,
                  "params": run.data.params}))
"""


@dataclass(frozen=True)
class BenchModel:
    uri: str  # models:/ride-duration@production in the bench registry
    folder: Path  # the logged model folder, usable as a local MODEL_URI
    version: str
    metrics: dict[str, float]
    params: dict[str, str]


def ensure_model(retrain: bool, progress) -> BenchModel:  # type: ignore[no-untyped-def]
    """Train into the bench's registry if it has no model (or `retrain`), then describe it."""
    WORKDIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ) | {"MLFLOW_TRACKING_URI": TRACKING_URI, "PYTHONPATH": str(ROOT)}
    described = _describe(env)
    if described is None or retrain:
        progress("training the model into the bench registry (20 s on an idle machine)")
        subprocess.run(
            [sys.executable, "-m", "training.train", "--tracking-uri", TRACKING_URI,
             "--artifact-location", str(ARTIFACTS), "--model-name", MODEL_NAME, "--alias", ALIAS],
            env=env, cwd=ROOT, check=True, timeout=900, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        described = _describe(env)
        if described is None:
            raise RuntimeError("training finished but no model is registered")
    folder = ARTIFACTS / "models" / described["model_id"] / "artifacts"
    return BenchModel(
        uri=f"models:/{MODEL_NAME}@{ALIAS}",
        folder=folder,
        version=f"{MODEL_NAME}/{described['version']}",
        metrics=described["metrics"],
        params=described["params"],
    )


def _describe(env: dict[str, str]) -> dict[str, Any] | None:
    probe = subprocess.run(
        [sys.executable, "-c", _DESCRIBE, MODEL_NAME, ALIAS],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return None
    return json.loads(probe.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def image_python(package: str, progress) -> Path | None:  # type: ignore[no-untyped-def]
    """Return a virtualenv's python with only the service's pinned requirements (None: failed)."""
    # The dev virtualenv also holds MLflow, pandas, scikit-learn, cryptography and test tools;
    # some are imported when present (google-auth takes cryptography), so a process started
    # from it is bigger and slower to start than the container, which has only these.
    requirements = ROOT / package / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = WORKDIR / "venvs" / f"{package}-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".installed").is_file():
        return python
    progress(f"building a virtualenv with only {package}/requirements.txt (once)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        timeout=1200, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    if installed.returncode != 0:
        progress(f"  pip failed, using the dev virtualenv: {installed.stderr[-300:]}")
        return None
    (venv / ".installed").touch()
    return python


def start_emulator(workdir: Path) -> Emulator:
    """Start the bench's own emulator on a free loopback port."""
    emulator = Emulator(free_port(), PROJECT, workdir)
    emulator.start()
    return emulator


def stack_settings(
    model: BenchModel, workdir: Path, emulator: Emulator, backends: int, predictor_workers: int
) -> Settings:
    """Settings for a stack on the bench emulator with topics of its own."""
    return isolated_settings(
        emulator,
        workdir,
        backends=backends,
        predictor_workers=predictor_workers,
        tracking_uri=TRACKING_URI,
        model_uri=str(model.folder),
    )


def predictor_service(
    model_uri: str, emulator: Emulator, workdir: Path, workers: int = 1, python: Path | None = None
) -> Service:
    """A predictor process on a free port, configured as one Cloud Run instance runs it."""
    env = dict(os.environ) | {
        "PUBSUB_EMULATOR_HOST": emulator.address,
        "PROJECT_ID": PROJECT,
        "MODEL_URI": model_uri,
        "MLFLOW_TRACKING_URI": TRACKING_URI,
        "WEB_CONCURRENCY": str(workers),
    }
    port = free_port()
    service = Service("predictor_service", port, env, workdir / f"predictor-{port}.log")
    if python is not None:
        service.process.argv[0] = str(python)
    return service


def backend_service(
    emulator: Emulator, workdir: Path, results_topic: str, python: Path | None = None
) -> Service:
    """A backend process on a free port, one worker, as one Cloud Run instance runs it."""
    env = dict(os.environ) | {
        "PUBSUB_EMULATOR_HOST": emulator.address,
        "PROJECT_ID": PROJECT,
        "BACKEND_PULL_STREAM": results_topic,
        "WEB_CONCURRENCY": "1",
    }
    port = free_port()
    service = Service("backend_service", port, env, workdir / f"backend-{port}.log")
    if python is not None:
        service.process.argv[0] = str(python)
    return service


def sample_rides(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Real rides from the validation month, as the backend's API takes them."""
    from training.data import VALID_FILE, load_trips

    trips = load_trips(VALID_FILE)
    trips = trips[(trips.trip_distance > 0) & (trips.trip_distance <= 200)]
    picked = trips.sample(n=count, random_state=seed)
    return [
        {
            "PULocationID": int(row.PULocationID),
            "DOLocationID": int(row.DOLocationID),
            "trip_distance": float(row.trip_distance),
            "datetime": row.lpep_pickup_datetime.to_pydatetime().isoformat(),
        }
        for row in picked.itertuples()
    ]


def expected_durations(folder: Path, rides: list[dict[str, Any]]) -> list[float]:
    """What the predictor must answer for each ride, from the same model and features."""
    from predictor_service.model import load_model

    model = load_model(str(folder))
    return [
        model.duration(
            r["PULocationID"],
            r["DOLocationID"],
            r["trip_distance"],
            datetime.fromisoformat(r["datetime"]),
        )
        for r in rides
    ]


def push_envelope(ride: dict[str, Any], ride_id: str, reply_to: str = "bench") -> bytes:
    """Wrap a ride as the emulator's push delivery wraps the backend's message."""
    data = json.dumps({"ride_id": ride_id, "features": ride}).encode()
    return json.dumps(
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": {"ride_id": ride_id, "reply_to": reply_to},
                "messageId": ride_id,
            },
            "subscription": f"projects/{PROJECT}/subscriptions/bench",
        }
    ).encode()
