"""A candidate predictor shadowing the riders' rides under gunicorn, on the emulator.

Two predictor processes: production answers every ride on the results topic, the candidate
answers the same rides on the shadow topic; neither topic nor the dead letters get the other's.
"""

import json
import uuid

import pytest

from devstack.shadow import Shadow, start_candidate
from tests.kit.rides import ride_message
from tests.kit.stream import publish, results_reader

pytestmark = [pytest.mark.emulator, pytest.mark.slow]


def by_topic(messages) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {m.attributes["ride_id"]: json.loads(m.data) for m in messages}


def test_the_candidate_answers_the_same_rides_where_riders_never_read(make_stack, trained_model):
    stack = make_stack(backends=0)
    shadow = Shadow(subscription=f"shadow-{uuid.uuid4().hex[:8]}", results_topic="shadow-results")
    candidate = start_candidate(stack, str(trained_model.folder), shadow)
    t = stack.settings.topology
    rides = [uuid.uuid4().hex for _ in range(6)]
    try:
        with (
            results_reader(stack.address, t) as riders,
            results_reader(stack.address, t, shadow.results_topic) as shadowed,
            results_reader(stack.address, t, t.dead_letter_topic) as dead_letters,
        ):
            for ride_id in rides:
                publish(stack.address, t, ride_message(ride_id), ride_id=ride_id, reply_to="b1")
            publish(stack.address, t, ride_message("bad", trip_distance=-1), ride_id="bad")
            production = by_topic(riders(len(rides), 30.0))
            candidates = shadowed(len(rides) + 1, 30.0)
            letters = dead_letters(1, 30.0)
            late = riders(1, 2.0) + dead_letters(1, 1.0)
    finally:
        candidate.stop()

    assert sorted(production) == sorted(rides), stack.predictor.process.log_tail()
    answers = {m.attributes["ride_id"]: m for m in candidates if "reason" not in m.attributes}
    [failure] = [m for m in candidates if "reason" in m.attributes]
    assert sorted(answers) == sorted(rides), candidate.process.log_tail()
    production_versions = {result["model_version"] for result in production.values()}
    candidate_versions = {json.loads(m.data)["model_version"] for m in answers.values()}
    assert len(production_versions) == 1 and len(candidate_versions) == 1
    assert production_versions != candidate_versions
    # The shadow's answers name no waiting rider; its failure is its own, not a dead letter.
    assert all("reply_to" not in m.attributes for m in answers.values())
    assert failure.attributes["reason"] == "invalid-ride"
    [letter] = letters
    assert letter.attributes["ride_id"] == "bad" and late == []
