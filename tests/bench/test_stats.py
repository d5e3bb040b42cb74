"""Percentile maths and run summaries of the bench."""

import pytest

from bench.stats import drift, median_run, percentile, summarize, windows


def test_percentile_interpolates_between_closest_ranks():
    samples = [1.0, 2.0, 3.0, 4.0]

    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 50) == 2.5
    assert percentile(samples, 100) == 4.0
    assert percentile(samples, 90) == pytest.approx(3.7)


def test_percentile_ignores_input_order():
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0


def test_percentile_of_one_sample_is_that_sample():
    assert percentile([7.0], 99.9) == 7.0


@pytest.mark.parametrize("bad", [-1, 100.1])
def test_percentile_out_of_range(bad):
    with pytest.raises(ValueError):
        percentile([1.0], bad)


def test_percentile_of_nothing():
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_of_a_hundred_samples():
    summary = summarize([float(i) for i in range(1, 101)])

    assert summary["count"] == 100
    assert summary["mean"] == 50.5
    assert summary["max"] == 100
    assert summary["p50"] == 50.5
    assert summary["p99"] == pytest.approx(99.01)


def test_summary_of_no_samples():
    assert summarize([]) == {"count": 0}


def test_median_run_is_the_middle_one_by_the_key():
    runs = [{"rps": 900.0, "id": 1}, {"rps": 1100.0, "id": 2}, {"rps": 1000.0, "id": 3}]

    assert median_run(runs, "rps")["id"] == 3


def test_median_run_of_an_even_count_is_the_lower_middle():
    runs = [{"rps": 4.0}, {"rps": 1.0}, {"rps": 3.0}, {"rps": 2.0}]

    assert median_run(runs, "rps")["rps"] == 2.0


def test_windows_group_points_by_start_time():
    points = [(0.5, 10.0), (1.5, 20.0), (10.2, 30.0), (19.9, 50.0)]

    rows = windows(points, 10.0)

    assert [row[0] for row in rows] == [0.0, 10.0]
    assert rows[0][1] == 15.0  # p50 of 10 and 20
    assert rows[1][1] == 40.0


def test_flat_latency_has_a_drift_near_one():
    points = [(t / 10, 5.0) for t in range(300)]

    assert drift(points, 10.0) == 1.0


def test_a_growing_backlog_shows_as_drift():
    points = [(t / 10, 5.0 + t) for t in range(300)]  # latency grows with time

    assert drift(points, 10.0) > 2
