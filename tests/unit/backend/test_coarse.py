"""backend_service.coarse: the estimator /estimate answers with."""

import json
from datetime import datetime

import pytest

from backend_service.coarse import CoarseEstimator


def small_estimator() -> CoarseEstimator:
    return CoarseEstimator(
        knots=(0.0, 1.0, 10.0),
        minutes=(2.0, 6.0, 40.0),
        hour_offsets=(tuple([0.0] * 8 + [3.0] + [0.0] * 15), tuple([-1.0] * 24)),
        pair_offsets={(74, 75): 2.0},
        version="coarse-test",
    )


def test_coarse_interpolates_between_knots():
    estimate = small_estimator().estimate(1, 2, 5.5, datetime(2021, 2, 3, 12))

    assert estimate == pytest.approx(23.0)


def test_coarse_adds_hour_and_pair_offsets():
    estimator = small_estimator()

    rush = estimator.estimate(74, 75, 1.0, datetime(2021, 2, 3, 8))  # Wednesday 8 am
    weekend = estimator.estimate(1, 2, 1.0, datetime(2021, 2, 6, 8))  # Saturday

    assert rush == pytest.approx(6.0 + 3.0 + 2.0)
    assert weekend == pytest.approx(5.0)


def test_coarse_is_clamped_to_the_trained_range():
    estimator = small_estimator()

    assert estimator.estimate(1, 2, 150.0, datetime(2021, 2, 3, 12)) == 40.0
    assert estimator.estimate(1, 2, 0.01, datetime(2021, 2, 6, 12)) == pytest.approx(1.0)


def test_coarse_survives_a_json_round_trip(tmp_path):
    path = tmp_path / "coarse.json"
    path.write_text(small_estimator().to_json())

    assert CoarseEstimator.load(path) == small_estimator()


def test_coarse_refuses_another_format(tmp_path):
    path = tmp_path / "coarse.json"
    path.write_text(json.dumps({"format": "something-else"}))

    with pytest.raises(ValueError, match="format"):
        CoarseEstimator.load(path)


def test_shipped_coarse_model_loads():
    estimator = CoarseEstimator.load()

    assert len(estimator.pair_offsets) > 1000
    assert 5 < estimator.estimate(74, 75, 2.5, datetime(2021, 2, 3, 8, 30)) < 30
