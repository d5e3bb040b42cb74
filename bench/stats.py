"""Percentiles and summaries of latency samples, and medians over repeated runs."""

import math
import statistics
from collections.abc import Iterable, Sequence

REPORTED = (50.0, 90.0, 99.0, 99.9)


def percentile(samples: Sequence[float], pct: float) -> float:
    """Return the `pct` percentile by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {pct}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """Return count, mean, max and the REPORTED percentiles of latencies in milliseconds."""
    if not samples_ms:
        return {"count": 0}
    ordered = sorted(samples_ms)
    summary = {"count": float(len(ordered)), "mean": statistics.fmean(ordered), "max": ordered[-1]}
    for pct in REPORTED:
        summary[f"p{pct:g}"] = percentile(ordered, pct)
    return summary


def median_run(runs: Iterable[dict[str, float]], key: str) -> dict[str, float]:
    """Return the run whose `key` is the median (the lower one of an even count)."""
    ordered = sorted(runs, key=lambda run: run[key])
    if not ordered:
        raise ValueError("no runs")
    return ordered[(len(ordered) - 1) // 2]


def windows(
    points: Sequence[tuple[float, float]], width_s: float
) -> list[tuple[float, float, float]]:
    """Group (time s, latency ms) points into windows: (start s, p50 ms, p99 ms) each."""
    buckets: dict[int, list[float]] = {}
    for when, latency in points:
        buckets.setdefault(int(when // width_s), []).append(latency)
    return [
        (index * width_s, percentile(values, 50), percentile(values, 99))
        for index, values in sorted(buckets.items())
    ]


def drift(points: Sequence[tuple[float, float]], width_s: float) -> float:
    """Return the last window's p50 over the first one's: about 1 when latency stays flat."""
    rows = windows(points, width_s)
    if len(rows) < 2 or rows[0][1] <= 0:
        return 1.0
    return rows[-1][1] / rows[0][1]
