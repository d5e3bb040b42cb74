"""A confirmation never outwaits a stopping worker: its wait is bounded below the grace period."""

import runpy
import threading
import time
from pathlib import Path

import pytest

from backend_service.config import MAX_RESULT_TIMEOUT_S, Config
from ride_stream.settings import ConfigError
from tests.kit.rides import RIDE

GUNICORN_CONF = Path(__file__).parents[3] / "backend_service" / "gunicorn_conf.py"
CLOUD_RUN_KILL_S = 10  # SIGKILL after SIGTERM


def test_the_longest_allowed_wait_ends_inside_gunicorns_grace_period():
    graceful_timeout = runpy.run_path(str(GUNICORN_CONF))["graceful_timeout"]

    # What is left of the grace period deletes the worker's results subscription.
    assert MAX_RESULT_TIMEOUT_S + 1 < graceful_timeout < CLOUD_RUN_KILL_S


def test_a_longer_result_timeout_is_refused():
    with pytest.raises(ConfigError, match="RESULT_TIMEOUT_S must be at most 6"):
        Config.from_env({"PROJECT_ID": "p", "RESULT_TIMEOUT_S": "10"})


def test_a_confirmation_whose_result_never_comes_answers_202_after_its_timeout(client, publisher):
    publisher.respond = lambda ride_id, ride: None  # the stream never answers
    started = time.monotonic()

    response = client.post("/rides", json=RIDE)

    assert response.status_code == 202
    assert response.get_json()["status"] == "pending"
    assert time.monotonic() - started < 5  # the fixture's RESULT_TIMEOUT_S is 0.2 s


def test_a_result_arriving_while_waiting_wins_over_the_timeout(app, client, publisher):
    store = app.extensions["backend"].rides
    publisher.respond = lambda ride_id, ride: threading.Timer(
        0.05, store.complete, args=(ride_id, 9.5, "m/1")
    ).start()

    response = client.post("/rides", json=RIDE)

    assert response.status_code == 200
    assert response.get_json()["duration_final"] == 9.5
