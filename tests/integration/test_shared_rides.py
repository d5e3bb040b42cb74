"""Rides shared by every backend through Firestore: both emulators, gunicorn, the real model."""

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack.lab import kill, resume, stall
from devstack.processes import wait_until
from devstack.proxy import ProxyProcess
from devstack.pubsub import emulator_clients
from devstack.rides import expected_duration
from devstack.stack import Stack, start_isolated
from predictor_service.model import load_model
from tests.kit.stream import pull_all

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
RIDE = {
    "PULocationID": 74,
    "DOLocationID": 168,
    "trip_distance": 3.2,
    "datetime": "2021-02-03T08:30:00",
}


@pytest.fixture(scope="module")
def model(trained_model):
    return load_model(str(trained_model.folder))


@pytest.fixture
def shared(make_stack, firestore_emulator):
    """Build two backends, one process each, sharing rides through the Firestore emulator."""

    def build(**overrides: object) -> Stack:
        return make_stack(
            backends=2, ride_store="firestore", firestore=firestore_emulator, **overrides
        )

    return build


@pytest.fixture(scope="module")
def both(emulator, firestore_emulator, trained_model, tmp_path_factory) -> Iterator[Stack]:
    """One such stack for the tests that leave it as they found it."""
    stack = start_isolated(
        emulator,
        tmp_path_factory.mktemp("shared"),
        backends=2,
        ride_store="firestore",
        firestore=firestore_emulator,
        tracking_uri=trained_model.tracking_uri,
        model_uri=trained_model.model_uri,
    )
    yield stack
    stack.stop()


class RidesTap:
    """A subscription of its own on the rides topic: what the backends published, by ride_id."""

    def __init__(self, stack: Stack) -> None:
        s = stack.settings
        self.address = stack.address
        name = f"tap-{s.rides_topic}-{uuid.uuid4().hex[:6]}"
        self.subscription = f"projects/{s.project}/subscriptions/{name}"
        with emulator_clients(self.address) as (_, subscriber):
            subscriber.create_subscription(
                name=self.subscription, topic=f"projects/{s.project}/topics/{s.rides_topic}"
            )

    def counts(self, expected: int) -> Counter[str]:
        """Pull for 3 s, or until one more message than `expected` came; count them by ride."""
        messages = pull_all(self.address, self.subscription, want=expected + 1, timeout_s=3)
        return Counter(m.attributes["ride_id"] for m in messages)


def post(url: str, body: dict[str, object]) -> requests.Response:
    return requests.post(f"{url}/rides", json=body, timeout=30)


def get(url: str, ride_id: str) -> requests.Response:
    return requests.get(f"{url}/rides/{ride_id}", timeout=10)


def test_a_ride_confirmed_on_one_backend_is_answered_by_the_other(both, model):
    a, b = both.backends

    confirmed = post(a.url, {**RIDE, "ride_id": "both-1"})
    assert confirmed.status_code == 200, confirmed.text

    # The recorder writes the result a moment after the stream delivered it to `a`.
    wait_until(lambda: get(b.url, "both-1").json().get("status") == "done", 10)
    seen = get(b.url, "both-1").json()
    assert seen["duration_final"] == confirmed.json()["duration_final"]
    assert seen["duration_final"] == expected_duration(model, RIDE)
    assert seen["model_version"] == confirmed.json()["model_version"]


def test_a_pending_ride_is_pending_on_the_other_backend_then_done(shared, model):
    stack = shared(service_env={"RESULT_TIMEOUT_S": "0.3"})
    a, b = stack.backends
    stack.predictor.stop()  # no result can come: the ride stays pending

    accepted = post(a.url, {**RIDE, "ride_id": "pend-1"})
    assert accepted.status_code == 202, accepted.text
    pending = get(b.url, "pend-1")
    assert pending.status_code == 200
    assert pending.json() == {
        "ride_id": "pend-1",
        "duration_coarse": accepted.json()["duration_coarse"],
        "status": "pending",
    }

    stack.predictor.start()  # Pub/Sub pushes the ride again; the recorder writes its result
    wait_until(lambda: get(b.url, "pend-1").json().get("status") == "done", 30)
    assert get(b.url, "pend-1").json()["duration_final"] == expected_duration(model, RIDE)


def test_the_same_ride_on_another_backend_is_answered_without_publishing_again(both):
    a, b = both.backends
    tap = RidesTap(both)
    first = post(a.url, {**RIDE, "ride_id": "idem-x"}).json()
    wait_until(lambda: get(b.url, "idem-x").json().get("status") == "done", 10)

    again = post(b.url, {**RIDE, "ride_id": "idem-x"})

    assert again.status_code == 200
    assert again.json() == first
    assert tap.counts(expected=1) == Counter({"idem-x": 1})


def test_another_ride_under_a_used_id_is_a_conflict_on_any_backend(both):
    a, b = both.backends
    assert post(a.url, {**RIDE, "ride_id": "used-1"}).status_code == 200

    other = post(b.url, {**RIDE, "trip_distance": 9.9, "ride_id": "used-1"})

    assert other.status_code == 409
    assert other.json()["ride_id"] == "used-1"


def test_two_backends_racing_on_new_ride_ids_publish_each_once(both, model):
    urls = [backend.url for backend in both.backends]
    tap = RidesTap(both)
    ids = [f"race-{i:02d}" for i in range(12)]
    bodies = [{**RIDE, "trip_distance": 1.0 + i, "ride_id": r} for i, r in enumerate(ids)]

    with ThreadPoolExecutor(2 * len(ids)) as pool:
        answers = list(
            pool.map(lambda job: post(*job), [(url, body) for body in bodies for url in urls])
        )

    assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
    assert tap.counts(expected=len(ids)) == Counter({ride_id: 1 for ride_id in ids})
    for body in bodies:  # every answer, from either backend, ends with the ride's own result
        wait_until(lambda b=body: get(urls[1], b["ride_id"]).json().get("status") == "done", 15)
        assert get(urls[0], body["ride_id"]).json()["duration_final"] == expected_duration(
            model, body
        )


def test_a_ride_no_one_took_is_404_on_every_backend(both):
    for backend in both.backends:
        response = get(backend.url, "never-taken")
        assert response.status_code == 404
        assert response.json()["ride_id"] == "never-taken"


@pytest.fixture
def pubsub_proxy(emulator):
    """The fault proxy with no fault set, between the backends and the emulator.

    A stream the emulator sees cancelled (its process killed) keeps a share of its
    subscription's messages (shared DESIGN.md); the proxy keeps its own upstream stream and
    hands back what reaches it, as Pub/Sub does once the lost stream's ack deadline passes.
    """
    proxy = ProxyProcess(emulator.address)
    yield proxy
    proxy.stop()


def test_a_backend_killed_while_its_rides_wait_leaves_them_to_the_other(
    shared, model, pubsub_proxy
):
    stack = shared(
        service_env={"RESULT_TIMEOUT_S": "5"},
        pubsub_hosts={"backend_service": pubsub_proxy.address},
    )
    victim, survivor = stack.backends
    bodies = [{**RIDE, "trip_distance": 0.5 + i, "ride_id": f"orphan-{i}"} for i in range(6)]
    stall(stack.predictor)  # results cannot come: the rides wait in the victim
    with ThreadPoolExecutor(len(bodies)) as pool:
        waiting = [pool.submit(post, victim.url, body) for body in bodies]
        time.sleep(1.5)  # every ride is published and waits
        kill(victim)
        resume(stack.predictor)
        for future in waiting:
            with pytest.raises(requests.RequestException):
                future.result()

    started = time.monotonic()
    for body in bodies:
        wait_until(
            lambda b=body: get(survivor.url, b["ride_id"]).json().get("status") == "done", 30
        )
        assert get(survivor.url, body["ride_id"]).json()["duration_final"] == (
            expected_duration(model, body)
        )
    assert time.monotonic() - started < 30
