"""predictor_service.features: the model's inputs, one ride or many."""

from datetime import datetime

import numpy as np

from predictor_service.features import FEATURE_NAMES, prepare_features


def test_features_are_in_the_documented_order():
    features = prepare_features([74], [75], [2.5], [datetime(2021, 2, 3, 8, 30)])

    assert features.shape == (1, len(FEATURE_NAMES))
    assert features.tolist() == [[74.0, 75.0, 2.5, 8.5, 2.0]]  # 2021-02-03 was a Wednesday


def test_features_of_many_rides_match_one_by_one():
    times = np.array(["2021-01-04T00:00", "2021-01-10T23:59"], dtype="datetime64[ns]")

    together = prepare_features([1, 2], [3, 4], [1.0, 2.0], times)

    assert together[:, 3:].tolist() == [[0.0, 0.0], [23 + 59 / 60, 6.0]]  # Monday, Sunday
