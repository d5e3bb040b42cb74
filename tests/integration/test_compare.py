"""The compare report on the emulator: production and a candidate under gunicorn, replayed rides.

The candidate is the course's pipeline trained on a few rows, so its answers differ from the
production model's and its RMSE on the validation month is worse.
"""

import math
import uuid

import pytest

from devstack.compare import Topics, compare
from devstack.shadow import Shadow, start_candidate
from tests.kit import models

pytestmark = [pytest.mark.emulator, pytest.mark.slow]


def test_the_report_compares_both_models_on_the_same_replayed_rides(make_stack, tmp_path):
    stack = make_stack(backends=0)
    folder = tmp_path / "course"
    models.save_course_pipeline(folder)
    shadow = Shadow(f"shadow-{uuid.uuid4().hex[:8]}", f"shadow-{uuid.uuid4().hex[:8]}")
    candidate = start_candidate(stack, str(folder), shadow)
    s = stack.settings
    topics = Topics(
        s.project, s.rides_topic, s.results_topic, s.dead_letter_topic, shadow.results_topic
    )
    try:
        values = compare(topics, stack.address, replay=20, rate=50, seconds=60)
    finally:
        candidate.stop()

    # A replayed ride the predictor refuses (the TLC data has some) fails on each side alike.
    assert values["rides seen"] == 20
    assert values["rides compared"] + values["production failures"] == 20, values
    assert values["candidate failures"] == values["production failures"] <= 2
    assert values["rides with an actual duration"] == values["rides compared"]
    assert values["production model_version"] != values["candidate model_version"]
    assert values["mean |difference| (min)"] > 0
    assert values["production RMSE (min)"] < values["candidate RMSE (min)"]
    for side in ("production", "candidate"):
        p50, p99 = values[f"{side} push latency p50 (ms)"], values[f"{side} push latency p99 (ms)"]
        assert 0 < p50 <= p99 and not math.isnan(p99)
