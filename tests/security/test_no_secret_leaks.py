"""A run whose AWS keys are set: no key in any log line or response, whatever goes wrong."""

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.lab import Lab
from devstack.processes import free_port
from devstack.stack import Service, Stack
from faults import poison

pytestmark = pytest.mark.emulator

# Shaped like real keys so that a leak through any formatting would still match.
ACCESS_KEY_ID = "AKIAFAULTDRILL7EXAMPLE"
SECRET_KEY = "drill+Secret/Value/Qz8vYw3Lk5Jp2Hn4Xr7Tb"
KEYS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def leaks(text: str) -> list[str]:
    return [name for name, value in KEYS.items() if value in text]


@pytest.fixture(scope="module")
def lab(emulator, trained_model, tmp_path_factory) -> Iterator[Lab]:
    lab = Lab(emulator, trained_model.folder, tmp_path_factory.mktemp("secrets"))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def keyed_stack(lab: Lab) -> Stack:
    """Both services with the keys in their environment and logging at DEBUG."""
    return lab.stack("secrets", service_env=KEYS | {"LOG_LEVEL": "DEBUG"})


def hostile_traffic(stack: Stack) -> list[str]:
    """Good and bad requests to both services; return every response body."""
    backend, predictor = stack.backends[0].url, stack.predictor.url
    ride = poison.RIDE | {"datetime": poison.WHEN}
    as_json = {"Content-Type": "application/json"}
    bad_push = {"message": {"data": base64.b64encode(b"[1]").decode()}}
    calls = [
        ("post", f"{backend}/rides", {"json": ride}),
        ("post", f"{backend}/rides", {"json": ride | {"ride_id": "r1"}}),
        ("post", f"{backend}/rides", {"json": ride | {"ride_id": "r1", "trip_distance": 9.0}}),
        ("post", f"{backend}/rides", {"data": b"{not json", "headers": as_json}),
        ("post", f"{backend}/estimate", {"json": {"PULocationID": "x", "trip_distance": -1}}),
        ("post", f"{backend}/estimate", {"json": {"padding": "x" * 40_000}}),
        ("post", f"{backend}/estimate", {"data": b"[" * 15_000, "headers": as_json}),
        ("get", f"{backend}/rides/nothing-here", {}),
        ("get", f"{backend}/readyz", {}),
        ("post", f"{predictor}/", {"data": b"\xff\xfe not an envelope"}),
        ("post", f"{predictor}/", {"json": {"message": {"data": "%%%"}}}),
        ("post", f"{predictor}/", {"json": bad_push}),
        ("post", f"{predictor}/", {"data": b" " * (15 * 1024 * 1024)}),
        ("get", f"{predictor}/readyz", {}),
    ]  # fmt: skip
    return [getattr(requests, method)(url, timeout=30, **kw).text for method, url, kw in calls]


def test_no_key_in_responses_or_logs_of_a_run_with_keys_set(keyed_stack: Stack):
    bodies = hostile_traffic(keyed_stack)
    workdir = keyed_stack.settings.workdir
    logs = {p.name: p.read_text(errors="replace") for p in workdir.glob("*.log")}

    assert {"predictor.log", f"backend-{keyed_stack.backends[0].port}.log"} <= set(logs)
    assert [leaks(body) for body in bodies if leaks(body)] == []
    assert {name: leaks(text) for name, text in logs.items() if leaks(text)} == {}


def test_predictor_failing_to_fetch_its_s3_model_logs_no_key(lab: Lab, tmp_path: Path):
    # An S3 endpoint that refuses connections: boto3 signs requests with the keys and fails.
    env = (
        os.environ
        | KEYS
        | {
            "PROJECT_ID": "secrets-project",
            "PUBSUB_EMULATOR_HOST": lab.emulator.address,
            "MODEL_URI": "s3://drill-bucket/models/m-1/artifacts",
            "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "LOG_LEVEL": "DEBUG",
        }
    )
    predictor = Service("predictor_service", free_port(), env, tmp_path / "predictor.log")
    predictor.start(wait=False)
    try:
        code = predictor.process.wait(timeout_s=120)
    finally:
        predictor.stop()
    log = predictor.process.log_path.read_text(errors="replace")

    assert code not in (None, 0)
    assert "refusing to start" in log
    assert leaks(log) == []
