"""devstack.comparison: the report's figures from what each side published."""

import math

import pytest

from devstack.comparison import Observed, figures, report


def observed() -> Observed:
    seen = Observed()
    for i, (prod, cand, actual) in enumerate([(10, 10, 12), (20, 23, 20), (30, 29, 33)]):
        ride = f"r{i}"
        seen.ride_published_s[ride] = 100.0 + i
        seen.production.add(ride, prod, "ride-duration/1", 100.0 + i + 0.010)
        seen.candidate.add(ride, cand, "ride-duration/2", 100.0 + i + 0.030)
        seen.actual[ride] = actual
    seen.production.add("only-production", 5, "ride-duration/1", 200.0)
    return seen


def test_only_rides_both_answered_are_compared() -> None:
    values = figures(observed())

    assert values["rides compared"] == 3
    assert values["mean |difference| (min)"] == pytest.approx(4 / 3)
    assert values["share differing > 2 min"] == pytest.approx(1 / 3)
    assert values["production model_version"] == "ride-duration/1"
    assert values["candidate model_version"] == "ride-duration/2"


def test_rmse_of_each_side_against_the_actual_durations() -> None:
    values = figures(observed())

    assert values["production RMSE (min)"] == pytest.approx(math.sqrt((4 + 0 + 9) / 3))
    assert values["candidate RMSE (min)"] == pytest.approx(math.sqrt((4 + 9 + 16) / 3))


def test_push_latency_is_the_result_publish_time_after_the_rides() -> None:
    values = figures(observed())

    assert values["production push latency p50 (ms)"] == pytest.approx(10, abs=0.01)
    assert values["candidate push latency p99 (ms)"] == pytest.approx(30, abs=0.01)


def test_a_second_result_for_a_ride_is_counted_not_compared() -> None:
    seen = observed()
    seen.candidate.add("r0", 99, "ride-duration/2", 300.0)

    values = figures(seen)

    assert values["candidate repeated results"] == 1
    assert values["mean |difference| (min)"] == pytest.approx(4 / 3)


def test_without_rides_in_common_the_figures_are_not_numbers() -> None:
    values = figures(Observed())

    assert values["rides compared"] == 0 and math.isnan(values["production RMSE (min)"])
    assert "rides compared" in report(values)
