"""firestore_rides.SharedRides: which confirmation publishes, with a fake Firestore."""

from datetime import UTC, datetime, timedelta

import pytest

from backend_service.firestore_rides import SharedRides
from backend_service.ride_store import LocalRides, RideConflict, RideRecord, StoreUnavailable

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class FakeFirestoreRides:
    """FirestoreRides' calls on a dict; `down` makes every call fail as Firestore would."""

    def __init__(self) -> None:
        self.docs: dict[str, RideRecord] = {}
        self.down = False
        self.deleted: list[str] = []
        self.reconnects = 0

    def reconnect(self) -> None:
        self.reconnects += 1

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("get: ServiceUnavailable: connection refused")

    def create(self, ride_id, fingerprint, coarse):
        self._check()
        if ride_id in self.docs:
            record = self.docs[ride_id]
            if record.fingerprint != fingerprint:
                raise RideConflict(f"ride_id {ride_id!r} was already used for another ride")
            return record, False
        self.docs[ride_id] = RideRecord(ride_id, fingerprint, coarse, created_at=NOW)
        return self.docs[ride_id], True

    def get(self, ride_id):
        self._check()
        return self.docs.get(ride_id)

    def delete(self, ride_id):
        self._check()
        self.deleted.append(ride_id)
        self.docs.pop(ride_id, None)


@pytest.fixture
def firestore() -> FakeFirestoreRides:
    return FakeFirestoreRides()


def shared(firestore, now=NOW, local=None) -> SharedRides:
    local = local if local is not None else LocalRides()  # an empty store is falsy
    return SharedRides(firestore, local, poll_s=0.01, clock=lambda: now)


def test_a_new_ride_is_published_by_the_one_that_took_it_and_waits_locally(firestore):
    local = LocalRides()
    record, publish = shared(firestore, local=local).claim("r1", b"fp", 5.0, b"msg")

    assert publish
    assert local.get("r1") is record  # the stream's result wakes this record


def test_a_pending_ride_taken_elsewhere_is_not_published_again(firestore):
    shared(firestore).claim("r1", b"fp", 5.0, b"msg")

    record, publish = shared(firestore, now=NOW + timedelta(seconds=2)).claim(
        "r1", b"fp", 5.0, b"msg"
    )

    assert not publish and record.duration_final is None


def test_a_ride_pending_past_the_republish_bound_is_published_again(firestore):
    shared(firestore).claim("r1", b"fp", 5.0, b"msg")

    _, publish = shared(firestore, now=NOW + timedelta(seconds=11)).claim("r1", b"fp", 5.0, b"msg")

    assert publish


def test_a_done_ride_is_answered_and_never_published_again(firestore):
    shared(firestore).claim("r1", b"fp", 5.0, b"msg")
    firestore.docs["r1"] = RideRecord("r1", b"fp", 5.0, 7.5, "v1", created_at=NOW)

    record, publish = shared(firestore, now=NOW + timedelta(hours=1)).claim(
        "r1", b"fp", 5.0, b"msg"
    )

    assert not publish and record.duration_final == 7.5


def test_another_ride_under_a_used_id_conflicts(firestore):
    shared(firestore).claim("r1", b"fp", 5.0, b"msg")

    with pytest.raises(RideConflict):
        shared(firestore).claim("r1", b"other", 5.0, b"msg")


def test_follow_returns_the_result_once_the_recorder_wrote_it(firestore):
    rides = shared(firestore)
    record, _ = rides.claim("r1", b"fp", 5.0, b"msg")
    firestore.docs["r1"] = RideRecord("r1", b"fp", 5.0, 7.5, "v1", created_at=NOW)

    assert rides.follow(record, timeout_s=1).duration_final == 7.5


def test_follow_gives_up_after_its_timeout_with_the_pending_record(firestore):
    rides = shared(firestore)
    record, _ = rides.claim("r1", b"fp", 5.0, b"msg")

    assert rides.follow(record, timeout_s=0.05) is record


def test_a_lookup_prefers_this_processs_result_to_a_store_not_yet_written(firestore):
    local = LocalRides()
    rides = shared(firestore, local=local)
    rides.claim("r1", b"fp", 5.0, b"msg")
    local.complete("r1", 7.5, "v1")  # the stream beat the recorder
    firestore.down = True

    assert rides.get("r1").duration_final == 7.5


def test_readiness_reads_the_store_once_then_reports_its_failure_and_recovery(firestore):
    rides = shared(firestore)
    assert rides.problem() is None  # checked by one read

    firestore.down = True
    with pytest.raises(StoreUnavailable):
        rides.get("r1")
    assert "ride store unavailable" in rides.problem()

    assert firestore.reconnects == 1  # the next call goes out on a new connection
    firestore.down = False
    rides.get("r1")
    assert rides.problem() is None


def test_a_release_that_fails_leaves_the_ride_to_the_republish_bound(firestore):
    rides = shared(firestore)
    rides.claim("r1", b"fp", 5.0, b"msg")
    rides.release("r1")
    assert firestore.deleted == ["r1"]

    rides.claim("r2", b"fp", 5.0, b"msg")
    firestore.down = True
    rides.release("r2")  # no exception: the ride stays, pending

    assert "r2" in firestore.docs
