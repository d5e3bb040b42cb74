"""The shared ride store under faults: short runs of each drill, on both emulators."""

import pytest

from devstack.firestore import unavailable_reason
from faults import orphan_faults, store_faults, suite

pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(autouse=True)
def firestore_available() -> None:
    if reason := unavailable_reason():
        pytest.skip(f"Firestore emulator unavailable: {reason}")


def test_backend_killed_its_waiting_rides_are_done_on_the_other(lab, record):
    result = record(
        suite.run(
            "backend-killed-shared",
            lab,
            lambda lab: store_faults.backend_killed_shared(lab, rides=30, rate_per_s=10),
        )
    )

    assert result.ok, result.summary()
    assert result.figures["orphans"] > 0
    assert result.delivered == result.sent


def test_store_down_clear_answers_then_nothing_lost(lab, record):
    result = record(
        suite.run(
            "store-restarted",
            lab,
            lambda lab: store_faults.store_restarted(lab, seconds=12, rate_per_s=5, down_s=4),
        )
    )

    assert result.ok, result.summary()
    assert result.delivered == result.sent


def test_a_killed_backends_rides_are_done_on_the_other_with_lookups_only(lab, record):
    result = record(
        suite.run(
            "orphans-lookups",
            lab,
            lambda lab: orphan_faults.backend_killed_lookups(lab, rides=6, watch_s=45),
        )
    )

    assert result.ok, result.summary()
    assert result.figures["done"] == 6
