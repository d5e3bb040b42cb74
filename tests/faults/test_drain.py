"""A backend worker that starts draining answers its waiting confirmations at once."""

import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest

from backend_service import create_app, gunicorn_conf
from backend_service.config import Config
from backend_service.results import ResultStore
from tests.unit.backend.conftest import RIDE, FakeListener, FakePublisher


@pytest.fixture
def app():
    # The stream never answers: every confirmation waits its full 10 s unless told otherwise.
    return create_app(
        Config(project_id="drain-project"), publisher=FakePublisher(), listener=FakeListener()
    )  # type: ignore[arg-type]


@pytest.fixture
def sigterm_restored():
    """Put back whatever handled SIGTERM before the test."""
    saved = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, saved)


def test_waiting_confirmation_answers_202_as_soon_as_the_worker_drains(app):
    runtime = app.extensions["backend"]
    threading.Timer(0.3, runtime.drain).start()
    started = time.monotonic()

    response = app.test_client().post("/rides", json=RIDE)

    assert response.status_code == 202
    assert response.get_json()["status"] == "pending"
    assert time.monotonic() - started < 5  # not the 10 s RESULT_TIMEOUT_S


def test_result_arriving_while_waiting_still_wins_over_the_timeout(app):
    runtime = app.extensions["backend"]
    store: ResultStore = runtime.store
    record = store.begin("r-1", b"fingerprint", 12.0)
    threading.Timer(0.2, store.complete, args=("r-1", 9.5, "m/1")).start()

    runtime.wait_for_result(record)

    assert record.duration_final == 9.5


def test_sigterm_drains_the_app_then_runs_gunicorns_own_handler(app, sigterm_restored):
    gunicorn_saw = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: gunicorn_saw.set())
    worker = SimpleNamespace(wsgi=app)

    gunicorn_conf.post_worker_init(worker)
    os.kill(os.getpid(), signal.SIGTERM)

    assert gunicorn_saw.wait(5)
    assert app.extensions["backend"].draining.is_set()


def test_worker_without_the_backend_app_keeps_gunicorns_handler(sigterm_restored):
    def gunicorn_handler(signum, frame):
        return None

    signal.signal(signal.SIGTERM, gunicorn_handler)

    gunicorn_conf.post_worker_init(SimpleNamespace(wsgi=None))

    assert signal.getsignal(signal.SIGTERM) is gunicorn_handler
