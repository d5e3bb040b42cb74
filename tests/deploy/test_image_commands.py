"""Each image's exact start command, run as a process over what the image would hold in /app.

No Docker engine runs here, so the test rebuilds the image's /app from the Dockerfile's COPY
lines and .dockerignore, then runs its CMD with its ENV, as the container would.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from google.cloud import pubsub_v1

from devstack.emulator import Emulator
from devstack.processes import http_status, wait_until
from tests.kit import dockerfile
from tests.kit.deploy_scripts import ROOT, free_port

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
GRACEFUL_TIMEOUT_S = 8  # both gunicorn_conf modules; under Cloud Run's 10 s before SIGKILL


class Container:
    """The image's CMD as a process, in a folder standing in for /app."""

    def __init__(self, service: str, app_dir: Path, runtime_env: dict[str, str]) -> None:
        path = ROOT / service / "Dockerfile"
        dockerfile.install_app(path, app_dir)
        self.app_dir = app_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            # The virtualenv stands in for the image's site-packages; nothing else leaks in.
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            # The image's user has no home directory.
            "HOME": "/nonexistent",
            **dockerfile.env(path),
            # What Cloud Run sets; loopback only here.
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            **runtime_env,
        }
        self.argv = dockerfile.cmd(path)
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.app_dir.parent / "output.log").open("wb") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.app_dir,  # WORKDIR /app
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so cleanup reaches workers
            )
        wait_until(self._ready, 90, interval_s=0.2, what=f"{self.url}/readyz")

    def _ready(self) -> bool:
        assert self.popen is not None
        if self.popen.poll() is not None:
            output = (self.app_dir.parent / "output.log").read_text(errors="replace")
            raise RuntimeError(f"the container exited:\n{output[-3000:]}")
        return http_status(f"{self.url}/readyz") == 200

    def terminate(self) -> None:
        """Send SIGTERM to the command itself, as `docker stop` does to PID 1."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> int | None:
        assert self.popen is not None
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Stop whatever is left of the process group."""
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


@pytest.fixture
def topics(deploy_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Topics of this test's own on the emulator, named as the services read them."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", deploy_emulator.address)
    publisher = pubsub_v1.PublisherClient()
    names = {
        "RIDES_TOPIC": f"rides-{os.urandom(3).hex()}",
        "RESULTS_TOPIC": f"results-{os.urandom(3).hex()}",
        "DEAD_LETTER_TOPIC": f"dead-letters-{os.urandom(3).hex()}",
    }
    for name in names.values():
        publisher.create_topic(name=publisher.topic_path(deploy_emulator.project, name))
    return names


@pytest.fixture
def run_image(tmp_path: Path, deploy_emulator: Emulator, topics: dict[str, str]) -> Iterator:
    started: list[Container] = []

    def run(service: str, **extra: str) -> Container:
        env = {
            "PROJECT_ID": deploy_emulator.project,
            "PUBSUB_EMULATOR_HOST": deploy_emulator.address,
            # Rides in the process unless a test gives the Firestore the deploy uses.
            "RIDE_STORE": "memory",
        }
        container = Container(service, tmp_path / service / "app", env | topics | extra)
        started.append(container)
        container.start()
        return container

    yield run
    for container in started:
        if container.popen is not None and container.wait(0) is None:
            container.terminate()
            if container.wait(15) is None:
                container.kill()


def test_backend_image_serves(run_image, topics, firestore_emulator, deploy_emulator) -> None:
    # As deployed: rides in Firestore, results recorded from the shared recorder subscription.
    subscriber = pubsub_v1.SubscriberClient()
    recorder = f"recorder-{os.urandom(3).hex()}"
    subscriber.create_subscription(
        name=subscriber.subscription_path(deploy_emulator.project, recorder),
        topic=f"projects/{deploy_emulator.project}/topics/{topics['RESULTS_TOPIC']}",
    )
    backend = run_image(
        "backend_service",
        RIDE_STORE="firestore",
        FIRESTORE_EMULATOR_HOST=firestore_emulator.address,
        RECORDER_SUBSCRIPTION=recorder,
    )

    ready = requests.get(f"{backend.url}/readyz", timeout=5).json()
    assert ready["status"] == "ready", ready
    assert ready["checks"]["store"] and ready["checks"]["recorder"]


def test_predictor_image_serves_the_model(run_image, model_folder: Path, tmp_path: Path) -> None:
    # As if built with --build-arg MODEL_DIR=model and deployed with MODEL_URI=/app/model.
    baked = tmp_path / "predictor_service" / "app" / "model"
    shutil.copytree(model_folder, baked)

    predictor = run_image("predictor_service", MODEL_URI=str(baked))

    assert requests.get(f"{predictor.url}/readyz", timeout=5).json()["status"] == "ready"


@pytest.mark.parametrize("service", ["backend_service", "predictor_service"])
def test_sigterm_stops_the_image_within_the_grace_period(
    run_image, model_folder: Path, service: str
) -> None:
    container = run_image(service, MODEL_URI=str(model_folder))

    container.terminate()

    assert container.wait(GRACEFUL_TIMEOUT_S + 1) == 0


def test_every_line_is_json_and_a_request_s_lines_carry_its_trace(
    run_image, model_folder: Path, deploy_emulator: Emulator
) -> None:
    predictor = run_image("predictor_service", MODEL_URI=str(model_folder))
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    undecodable = {"message": {"data": "not base64!", "messageId": "7"}, "subscription": "s"}

    answer = requests.post(
        f"{predictor.url}/",
        json=undecodable,
        headers={"X-Cloud-Trace-Context": f"{trace_id}/12345;o=1"},
        timeout=10,
    )
    predictor.terminate()
    predictor.wait(GRACEFUL_TIMEOUT_S + 1)

    assert answer.status_code == 204
    output = (predictor.app_dir.parent / "output.log").read_text().splitlines()
    records = [json.loads(line) for line in output if line.strip()]
    assert all({"severity", "message"} <= record.keys() for record in records)
    assert any(record["logger"] == "gunicorn.error" for record in records)
    [dead_letter] = [r for r in records if r["message"] == "dead-lettered a push message"]
    assert dead_letter["logging.googleapis.com/trace"] == (
        f"projects/{deploy_emulator.project}/traces/{trace_id}"
    )
    assert dead_letter["logging.googleapis.com/spanId"] == f"{12345:016x}"
    untraced = [r for r in records if r is not dead_letter]
    assert all("logging.googleapis.com/trace" not in r for r in untraced)
