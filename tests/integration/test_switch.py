"""The switch drill under gunicorn on the emulator: rides flowing while riders move to the
candidate and back. Each ride answered once, by one of the two, none by the candidate early."""

import uuid

import pytest

from devstack.shadow import Shadow, start_candidate
from devstack.switch import drill, model_version

pytestmark = [pytest.mark.emulator, pytest.mark.slow]


def test_every_ride_is_answered_once_across_promotion_and_rollback(make_stack, trained_model):
    stack = make_stack(backends=0)
    shadow = Shadow(f"shadow-{uuid.uuid4().hex[:8]}", f"shadow-{uuid.uuid4().hex[:8]}")
    candidate = start_candidate(stack, str(trained_model.folder), shadow)
    try:
        counts = drill(stack, candidate.url, rides=90, rate=15)
        production = model_version(stack.predictor.url)
    finally:
        candidate.stop()

    assert counts["rides sent"] == counts["answered"] == 90, counts
    assert counts["lost"] == counts["answered twice"] == 0
    assert counts["candidate answers before promotion"] == 0
    by_version = counts["answers by model_version"]
    assert set(by_version) == {production, counts["candidate model_version"]}
    assert sum(by_version.values()) == 90
