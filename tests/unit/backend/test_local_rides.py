"""backend_service.ride_store: the store where the first result for a ride wins."""

import pytest

from backend_service.ride_store import LocalRides, RideConflict


def test_first_result_wins():
    store = LocalRides()
    record = store.add("r1", b"fp", 5.0)

    assert store.complete("r1", 7.0, "v1")
    assert not store.complete("r1", 99.0, "v2")
    assert (record.duration_final, record.model_version) == (7.0, "v1")
    assert record.done.is_set()


def test_result_for_an_unknown_ride_is_ignored():
    assert not LocalRides().complete("nobody", 1.0, "v1")


def test_reusing_a_ride_id_for_another_ride_conflicts():
    store = LocalRides()
    store.add("r1", b"fp-a", 5.0)

    with pytest.raises(RideConflict):
        store.add("r1", b"fp-b", 5.0)


def test_store_forgets_the_oldest_rides_beyond_capacity():
    store = LocalRides(capacity=2)
    for ride_id in ("a", "b", "c"):
        store.add(ride_id, b"fp", 1.0)

    assert store.get("a") is None and store.get("c") is not None
    assert len(store) == 2


def test_pending_lists_the_waiting_rides_newest_first_with_their_message():
    store = LocalRides()
    for ride_id in ("a", "b", "c", "d"):
        store.add(ride_id, b"fp", 1.0, message=f"ride {ride_id}".encode())
    store.complete("c", 2.0, "v1")

    waiting = store.pending(limit=2)

    assert [(r.ride_id, r.message) for r in waiting] == [("d", b"ride d"), ("b", b"ride b")]
    assert store.get("c").message == b""  # a done ride no longer holds its message
