"""The coarse estimator: a piecewise-linear distance curve plus hour and zone-pair offsets.

Fitted by `training/` and shipped as a small JSON file; evaluating it needs no ML library.
"""

import bisect
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

FORMAT = "ride-duration-coarse/1"
DEFAULT_PATH = Path(__file__).with_name("coarse_model.json")
MIN_MINUTES, MAX_MINUTES = 1.0, 60.0  # the range the models were trained on


@dataclass(frozen=True)
class CoarseEstimator:
    knots: tuple[float, ...]  # trip distance in miles, ascending
    minutes: tuple[float, ...]  # duration at each knot
    hour_offsets: tuple[tuple[float, ...], tuple[float, ...]]  # [weekday, weekend][hour]
    pair_offsets: dict[tuple[int, int], float]
    version: str

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> "CoarseEstimator":
        """Read an estimator written by `to_json`."""
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: expected format {FORMAT!r}, got {doc.get('format')!r}")
        pairs = {
            (int(pu), int(do)): float(offset)
            for key, offset in doc["pair_offsets"].items()
            for pu, do in [key.split("-")]
        }
        weekday, weekend = doc["hour_offsets"]
        return cls(
            knots=tuple(doc["knots"]),
            minutes=tuple(doc["minutes"]),
            hour_offsets=(tuple(weekday), tuple(weekend)),
            pair_offsets=pairs,
            version=str(doc["version"]),
        )

    def to_json(self) -> str:
        """Serialise in the format `load` reads."""
        return json.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "knots": self.knots,
                "minutes": [round(m, 4) for m in self.minutes],
                "hour_offsets": [[round(h, 4) for h in day] for day in self.hour_offsets],
                "pair_offsets": {
                    f"{pu}-{do}": round(v, 3) for (pu, do), v in sorted(self.pair_offsets.items())
                },
            },
            separators=(",", ":"),
        )

    def estimate(self, pickup_zone: int, dropoff_zone: int, miles: float, when: datetime) -> float:
        """Return the coarse duration in minutes of one ride; `when` is New York local time."""
        knots = self.knots
        x = min(max(miles, knots[0]), knots[-1])
        i = min(max(bisect.bisect_right(knots, x) - 1, 0), len(knots) - 2)
        share = (x - knots[i]) / (knots[i + 1] - knots[i])
        minutes = self.minutes[i] * (1 - share) + self.minutes[i + 1] * share
        minutes += self.hour_offsets[when.weekday() >= 5][when.hour]
        minutes += self.pair_offsets.get((pickup_zone, dropoff_zone), 0.0)
        return round(min(max(minutes, MIN_MINUTES), MAX_MINUTES), 1)
