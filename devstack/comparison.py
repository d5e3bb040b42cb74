"""Production against candidate on the same rides: the figures `python -m devstack.compare` prints.

Every figure comes from what Pub/Sub carried: each model's results (production's on the results
topic, the candidate's on the shadow topic), their failures (the riders' dead letters, the
shadow's messages with a `reason`), the rides' publish times (push latency: a result's publish
time minus its ride's) and, on replayed rides, the actual duration the ride carried.
"""

import math
from dataclasses import dataclass, field

import numpy as np

ACTUAL = "actual_minutes"  # attribute: a replayed ride's actual duration, from the TLC data
DIFFERS_BY_MINUTES = 2.0


@dataclass
class Side:
    """One model's answers: ride id -> (minutes, published at); its versions and failures."""

    minutes: dict[str, float] = field(default_factory=dict)
    published_s: dict[str, float] = field(default_factory=dict)
    versions: set[str] = field(default_factory=set)
    failures: int = 0
    repeats: int = 0  # results for a ride already answered (a redelivery's)

    def add(self, ride_id: str, minutes: float, version: str, published_s: float) -> None:
        if ride_id in self.minutes:
            self.repeats += 1
            return
        self.minutes[ride_id] = minutes
        self.published_s[ride_id] = published_s
        self.versions.add(version)


@dataclass
class Observed:
    production: Side = field(default_factory=Side)
    candidate: Side = field(default_factory=Side)
    ride_published_s: dict[str, float] = field(default_factory=dict)
    actual: dict[str, float] = field(default_factory=dict)


def figures(seen: Observed) -> dict[str, float | int | str]:
    """Every figure of the report, by name; NaN where nothing was there to measure."""
    both = sorted(set(seen.production.minutes) & set(seen.candidate.minutes))
    prod = np.array([seen.production.minutes[r] for r in both])
    cand = np.array([seen.candidate.minutes[r] for r in both])
    diff = np.abs(prod - cand)
    out: dict[str, float | int | str] = {
        "rides seen": len(seen.ride_published_s),
        "rides compared": len(both),
        "mean |difference| (min)": _stat(diff, np.mean),
        "p95 |difference| (min)": _stat(diff, lambda d: np.percentile(d, 95)),
        f"share differing > {DIFFERS_BY_MINUTES:g} min": _stat(
            diff, lambda d: np.mean(d > DIFFERS_BY_MINUTES)
        ),
    }
    known = [r for r in both if r in seen.actual]
    actual = np.array([seen.actual[r] for r in known])
    for name, side in (("production", seen.production), ("candidate", seen.candidate)):
        out[f"{name} model_version"] = ", ".join(sorted(side.versions)) or "-"
        out[f"{name} failures"] = side.failures
        out[f"{name} repeated results"] = side.repeats
        latency = np.array(
            [
                (side.published_s[r] - seen.ride_published_s[r]) * 1000
                for r in both
                if r in seen.ride_published_s
            ]
        )
        out[f"{name} push latency p50 (ms)"] = _stat(latency, lambda d: np.percentile(d, 50))
        out[f"{name} push latency p99 (ms)"] = _stat(latency, lambda d: np.percentile(d, 99))
        predicted = np.array([side.minutes[r] for r in known])
        out[f"{name} RMSE (min)"] = _stat(
            predicted - actual if len(known) else predicted, lambda e: np.sqrt(np.mean(e**2))
        )
    out["rides with an actual duration"] = len(known)
    return out


def _stat(values: np.ndarray, how) -> float:  # type: ignore[no-untyped-def]
    return float(how(values)) if len(values) else math.nan


def report(values: dict[str, float | int | str]) -> str:
    """The figures as aligned lines, for a terminal or a doc."""
    width = max(len(name) for name in values)
    lines = []
    for name, value in values.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"{name:<{width}}  {shown}")
    return "\n".join(lines)
