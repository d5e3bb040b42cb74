"""How bench.e2e classifies open-loop answers, and when the 400 rides/s figure is met."""

import json

import pytest

from bench.e2e import check, figure_400
from devstack import load


def outcome(index: int, status: int, body: dict) -> load.Answer:
    return load.Answer(index, index / 10, 5.0, status, json.dumps(body).encode(), 0.0)


def test_answers_are_classified_right_crossed_pending_and_failed():
    rides = [{"trip_distance": 1.0}, {"trip_distance": 9.0}]
    expected = [4.0, 20.0]
    result = load.OpenLoopResult(
        rate=10, duration_s=0.6,
        outcomes=[
            outcome(0, 200, {"ride_id": "r0", "duration_final": 4.0}),
            outcome(1, 200, {"ride_id": "r1", "duration_final": 4.0}),  # another ride's figure
            outcome(2, 202, {"ride_id": "r2", "status": "pending"}),
            outcome(3, 503, {"error": {"code": 503}}),
        ],
        errors=["4: ConnectionError"],
    )  # fmt: skip

    found = check(result, rides, expected, ride_ids=lambda i: f"r{i}")

    assert (found["right"], found["crossed"], found["pending_202"]) == (1, 1, 1)
    assert found["failed"] == 2
    assert found["unanswered"] == 1  # request 5 got neither an answer nor an error
    assert found["latency_ms"]["count"] == 2


def steady_run(rate: float, answered_per_s: float) -> dict:
    """What `check` reports for a run whose latency stayed flat, answering at a given pace."""
    return {
        "latency_ms": {"count": 100, "p50": 90.0, "p99": 150.0},
        "drift": 1.1, "right": 100, "sent": 100, "crossed": 0, "failed": 0, "unanswered": 0,
        "pending_202": 0, "offered_per_s": rate, "answered_per_s": answered_per_s,
    }  # fmt: skip


@pytest.mark.parametrize(("answered", "met"), [(399.2, True), (380.0, True), (364.3, False)])
def test_400_per_second_is_met_only_when_the_stream_keeps_pace(answered, met):
    assert figure_400(steady_run(400, answered), "conditions").met is met


def test_400_per_second_is_not_met_when_latency_climbs():
    run = steady_run(400, 399.0) | {"drift": 2.34}

    assert figure_400(run, "conditions").met is False
