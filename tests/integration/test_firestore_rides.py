"""Ride state in Firestore, on Google's emulator: created once, completed once, seen by all."""

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.cloud import firestore

from backend_service.firestore_rides import FirestoreRides, StoreUnavailable, client_from_env
from backend_service.ride_store import RideConflict
from devstack.processes import free_port
from tests.kit.grpc_fakes import FakeRpcError

pytestmark = pytest.mark.emulator
PROJECT = "test-project"
FINGERPRINT = b"\x01" * 16

Stores = Callable[..., FirestoreRides]


@pytest.fixture
def clients(monkeypatch) -> Iterator[Callable[[str], firestore.Client]]:
    """Make Firestore clients for an emulator address; close them all afterwards."""
    made: list[firestore.Client] = []

    def make(address: str) -> firestore.Client:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", address)
        made.append(client_from_env(PROJECT))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def collection() -> str:
    return f"rides-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def stores(firestore_emulator, clients, collection: str) -> Stores:
    """Make stores, each on a client of its own, all on this test's own collection."""

    def make(**options: Any) -> FirestoreRides:
        return FirestoreRides(clients(firestore_emulator.address), collection, **options)

    return make


def create(store: FirestoreRides, ride_id: str, fingerprint: bytes = FINGERPRINT, coarse=12.5):
    return store.create(ride_id, fingerprint, coarse)


def test_a_new_ride_is_created_and_seen_by_another_client(stores: Stores):
    record, created = create(stores(), "r1")
    assert created
    assert (record.ride_id, record.fingerprint, record.duration_coarse) == ("r1", FINGERPRINT, 12.5)

    seen = stores().get("r1")
    assert seen is not None
    assert (seen.fingerprint, seen.duration_coarse, seen.duration_final) == (
        FINGERPRINT,
        12.5,
        None,
    )
    assert seen.as_json()["status"] == "pending"
    assert stores().get("absent") is None


def test_the_same_ride_again_returns_its_current_record(stores: Stores):
    store = stores()
    create(store, "r1")
    record, created = create(stores(), "r1", coarse=99.0)
    assert not created
    assert record.duration_coarse == 12.5  # the stored ride, not the new call's figure

    assert store.complete("r1", 14.0, "7")
    record, created = create(stores(), "r1")
    assert not created
    assert (record.duration_final, record.model_version) == (14.0, "7")
    assert record.done.is_set()


def test_another_ride_under_the_same_id_conflicts(stores: Stores):
    store = stores()
    create(store, "r1")
    with pytest.raises(RideConflict):
        create(stores(), "r1", fingerprint=b"\x02" * 16)
    stored = store.get("r1")
    assert stored is not None and stored.fingerprint == FINGERPRINT


def _race(
    racers: list[FirestoreRides], action: Callable[[int, FirestoreRides], bool]
) -> list[bool]:
    """Run `action(i, store)` for every racer at once, each in a thread; return the outcomes."""
    start = threading.Barrier(len(racers), timeout=10)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def race(index: int, store: FirestoreRides) -> None:
        try:
            start.wait()
            outcomes.append(action(index, store))
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=race, args=pair) for pair in enumerate(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    return outcomes


def test_racing_processes_create_a_new_ride_once(stores: Stores):
    def create_contested(_index: int, store: FirestoreRides) -> bool:
        record, created = create(store, "contested")
        assert record.fingerprint == FINGERPRINT
        return created

    assert sorted(_race([stores() for _ in range(8)], create_contested)) == [False] * 7 + [True]


def test_racing_final_results_leave_one_the_same_for_every_reader(stores: Stores):
    create(stores(), "r1")
    racers = [stores() for _ in range(8)]
    outcomes = _race(racers, lambda index, store: store.complete("r1", float(index), str(index)))
    assert outcomes == [True] * 8  # every one reached the ride; one of them is its result
    seen = {(r.duration_final, r.model_version) for r in (s.get("r1") for s in racers) if r}
    assert len(seen) == 1
    duration_final, model_version = seen.pop()
    assert model_version is not None and duration_final == float(model_version)


def test_the_first_final_result_wins(stores: Stores):
    store = stores()
    create(store, "r1")
    assert store.complete("r1", 14.0, "7")
    assert stores().complete("r1", 99.0, "8")  # the ride exists: recorded after the first
    assert store.complete("r1", 14.0, "7")  # a redelivery changes nothing
    assert not store.complete("unknown", 1.0, "7")

    record = stores().get("r1")
    assert record is not None
    assert (record.duration_final, record.model_version) == (14.0, "7")
    assert record.as_json()["status"] == "done"
    assert record.done.is_set()


def test_many_results_are_recorded_in_one_batch_each_as_if_alone(stores: Stores):
    store = stores()
    for ride_id in ("a", "b", "c"):
        create(store, ride_id)
    store.complete("c", 5.0, "1")
    outcomes = store.complete_all(
        [("a", 7.0, "2"), ("b", 8.0, "2"), ("absent", 9.0, "2"), ("a", 70.0, "3"), ("c", 50.0, "2")]
    )
    assert outcomes == [True, True, False, True, True]
    finals = {r: (x.duration_final, x.model_version) for r in "abc" if (x := stores().get(r))}
    assert finals == {"a": (7.0, "2"), "b": (8.0, "2"), "c": (5.0, "1")}


def test_a_document_of_the_previous_release_is_read_from_its_fields(
    stores: Stores, firestore_emulator, clients, collection: str
):
    writer = clients(firestore_emulator.address).collection(collection)
    old = {"fingerprint": FINGERPRINT, "duration_coarse": 12.5, "created_at": datetime.now(UTC)}
    writer.document("old").set(old | {"duration_final": 14.0, "model_version": "7"})
    record = stores().get("old")
    assert record is not None and (record.duration_final, record.model_version) == (14.0, "7")


def test_every_ride_expires_a_retention_period_after_its_creation(
    stores: Stores, firestore_emulator, clients, collection: str
):
    store = stores(retention=timedelta(hours=3))
    before = datetime.now(UTC)
    create(store, "r1")
    after = datetime.now(UTC)

    reader = clients(firestore_emulator.address)
    document = reader.collection(collection).document("r1").get().to_dict()
    assert before <= document["created_at"] <= after
    assert document["expire_at"] - document["created_at"] == timedelta(hours=3)


def _fails_within(timeout_s: float, calls: list[Callable[[], object]]) -> list[str]:
    reasons = []
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:
            call()
        assert time.monotonic() - started < timeout_s + 0.5
        reasons.append(raised.value.reason)
    return reasons


def _all_calls(store: FirestoreRides) -> list[Callable[[], object]]:
    return [
        lambda: create(store, "r1"),
        lambda: store.get("r1"),
        lambda: store.complete("r1", 14.0, "7"),
        lambda: store.delete("r1"),
    ]


def test_a_stopped_emulator_raises_store_unavailable_within_the_timeout(clients):
    store = FirestoreRides(clients(f"127.0.0.1:{free_port()}"), "rides", timeout_s=0.5)
    reasons = _fails_within(0.5, _all_calls(store))
    assert reasons[0].startswith("create: ")


def test_an_emulator_that_never_answers_raises_store_unavailable_within_the_timeout(clients):
    with socket.socket() as silent:  # accepts connections (the kernel does), answers nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        store = FirestoreRides(clients(address), "rides", timeout_s=0.5)
        _fails_within(0.5, _all_calls(store))


class FlakyWrites:
    """The store's lean writes, each call failing once with `code` first, as Firestore does now
    and then: before reaching Firestore (`landed=False`) or after it applied (the answer lost)."""

    def __init__(self, lean: Any, code: grpc.StatusCode, landed: bool) -> None:
        self._lean, self._code, self._landed = lean, code, landed
        self.failed: list[str] = []

    def _flaky(self, name: str, call: Callable[[], Any]) -> Any:
        if name in self.failed:
            return call()
        self.failed.append(name)
        if self._landed:
            call()
        raise FakeRpcError(self._code, "injected")

    def create(self, ride_id: str, fields: dict[str, Any], timeout_s: float) -> None:
        self._flaky("create", lambda: self._lean.create(ride_id, fields, timeout_s))

    def append_results(self, results: Any, timeout_s: float) -> Any:
        return self._flaky("append", lambda: self._lean.append_results(results, timeout_s))


@pytest.mark.parametrize("code", ["UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED"])
@pytest.mark.parametrize("landed", [False, True], ids=["before", "after"])
def test_a_write_that_fails_once_is_retried_and_counted_once(
    stores: Stores, code: str, landed: bool
):
    store = stores()
    flaky = FlakyWrites(store._lean, grpc.StatusCode[code], landed)
    store._lean = flaky  # type: ignore[assignment]

    record, created = create(store, "r1")
    assert created  # even when the first attempt created it and its answer was lost
    assert not create(stores(), "r1")[1]
    assert store.complete("r1", 14.0, "7")
    assert not stores().complete("unknown", 1.0, "7")
    assert flaky.failed == ["create", "append"]

    seen = stores().get("r1")
    assert seen is not None
    assert (seen.fingerprint, seen.duration_final, seen.model_version) == (FINGERPRINT, 14.0, "7")
