"""What the scenarios run against: the bench's own model, rides, and stacks on free ports."""

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import registry
from devstack.emulator import Emulator
from devstack.processes import free_port
from devstack.pubsub import push_envelope
from devstack.stack import ROOT, Service, Settings

WORKDIR = ROOT / ".local" / "bench"
TRACKING_URI = f"sqlite:///{WORKDIR / 'mlflow.db'}"
ARTIFACTS = WORKDIR / "mlartifacts"
PROJECT = "bench-project"
MODEL_NAME = "ride-duration"
ALIAS = "production"


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
    described = registry.lookup(TRACKING_URI, MODEL_NAME, ALIAS)
    if described is None or retrain:
        progress("training the model into the bench registry (20 s on an idle machine)")
        registry.train(TRACKING_URI, str(ARTIFACTS), MODEL_NAME, ALIAS, quiet=True)
        described = registry.lookup(TRACKING_URI, MODEL_NAME, ALIAS)
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


def service(
    package: str, emulator: Emulator, workdir: Path, env: dict[str, str], python: Path | None = None
) -> Service:
    """A service on a free port, one gunicorn worker, rides in memory, the bench's registry."""
    env = dict(os.environ) | {
        "PUBSUB_EMULATOR_HOST": emulator.address, "PROJECT_ID": PROJECT, "WEB_CONCURRENCY": "1",
        "RIDE_STORE": "memory", "MLFLOW_TRACKING_URI": TRACKING_URI,
    } | env  # fmt: skip
    port = free_port()
    service = Service(package, port, env, workdir / f"{package.split('_')[0]}-{port}.log")
    if python is not None:
        service.process.argv[0] = str(python)
    return service


def topics(settings: Settings) -> dict[str, str]:
    """The environment that puts a lone service on a stack's topics."""
    s = settings
    return {"RIDES_TOPIC": s.rides_topic, "RESULTS_TOPIC": s.results_topic,
            "DEAD_LETTER_TOPIC": s.dead_letter_topic}  # fmt: skip


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
    from devstack.rides import expected_duration
    from predictor_service.model import load_model

    model = load_model(str(folder))
    return [expected_duration(model, ride) for ride in rides]


def ride_envelope(ride: dict[str, Any], ride_id: str, reply_to: str = "bench") -> bytes:
    """Wrap a ride as the emulator's push delivery wraps the backend's message."""
    data = json.dumps({"ride_id": ride_id, "features": ride}).encode()
    return push_envelope(
        data,
        {"ride_id": ride_id, "reply_to": reply_to},
        message_id=ride_id,
        subscription=f"projects/{PROJECT}/subscriptions/bench",
    )
