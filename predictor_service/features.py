"""Feature preparation shared by training and serving, so both see the same numbers."""

import json
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from ride_stream.rides import NYC

FEATURE_NAMES = (
    "PULocationID",
    "DOLocationID",
    "trip_distance",
    "pickup_hour",
    "pickup_day_of_week",
)
# Zone ids are labels, not magnitudes: the model treats them as categories.
CATEGORICAL_FEATURES = ("PULocationID", "DOLocationID")


def local_time(when: datetime) -> datetime:
    """Return `when` as naive New York wall-clock time; naive input is taken as already local."""
    if when.tzinfo is None:
        return when
    return when.astimezone(NYC).replace(tzinfo=None)


def prepare_features(
    pickup_zone: npt.ArrayLike,
    dropoff_zone: npt.ArrayLike,
    trip_distance: npt.ArrayLike,
    pickup_datetime: npt.ArrayLike | Sequence[datetime],
) -> npt.NDArray[np.float64]:
    """Return the model's feature matrix, one row per ride, columns as in FEATURE_NAMES."""
    minutes = np.asarray(pickup_datetime, dtype="datetime64[m]")
    days = minutes.astype("datetime64[D]")
    hour = (minutes - days).astype(np.int64) / 60.0
    # Day 0 of the epoch, 1970-01-01, was a Thursday; shift so that Monday is 0.
    day_of_week = (days.astype(np.int64) + 3) % 7
    return np.column_stack(
        [
            np.asarray(pickup_zone, dtype=np.float64),
            np.asarray(dropoff_zone, dtype=np.float64),
            np.asarray(trip_distance, dtype=np.float64),
            hour,
            day_of_week.astype(np.float64),
        ]
    )


# The model also sees what the training month knew about each pair of zones: a booster splits
# on one zone at a time, and learns the ~8,000 pairs poorly from two 265-level categories
# (validation RMSE 5.40 without these columns, 5.28 with them).
DERIVED_FEATURE_NAMES = ("same_zone", "pair_minutes", "pair_distance_ratio")
MODEL_FEATURE_NAMES = FEATURE_NAMES + DERIVED_FEATURE_NAMES
PAIR_TABLE_FORMAT = "ride-duration-pairs/1"
PAIR_TABLE_FILE = "pair_table.json"
_ZONES = 266  # zone ids 1-265 index the tables directly
_MIN_MILES = 0.1  # keeps the ratio finite for pairs whose median trip is 0 miles


class PairTable:
    """Median minutes and miles of the training rides between each pair of zones."""

    def __init__(self, rows: Sequence[tuple[int, int, float, float]]) -> None:
        """Take (pickup zone, dropoff zone, median minutes, median miles) rows."""
        self.rows = [(int(pu), int(do), float(m), float(mi)) for pu, do, m, mi in rows]
        # Dense tables make a lookup one indexing operation, for one ride or a million.
        self.minutes = np.full((_ZONES, _ZONES), np.nan)
        self.miles = np.full((_ZONES, _ZONES), np.nan)
        for pu, do, minutes, miles in self.rows:
            self.minutes[pu, do], self.miles[pu, do] = minutes, miles

    def to_json(self) -> str:
        """Serialise in the format `from_json` reads."""
        return json.dumps({"format": PAIR_TABLE_FORMAT, "pairs": self.rows}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "PairTable":
        """Read a table written by `to_json`."""
        doc = json.loads(text)
        if doc.get("format") != PAIR_TABLE_FORMAT:
            raise ValueError(f"expected format {PAIR_TABLE_FORMAT!r}, got {doc.get('format')!r}")
        return cls(doc["pairs"])


def add_pair_features(
    features: npt.NDArray[np.float64], table: PairTable
) -> npt.NDArray[np.float64]:
    """Append the DERIVED_FEATURE_NAMES columns to rows laid out as FEATURE_NAMES."""
    pickup = features[:, 0].astype(np.intp)
    dropoff = features[:, 1].astype(np.intp)
    # A pair the training month never saw gets NaN, which LightGBM treats as missing.
    ratio = features[:, 2] / np.maximum(table.miles[pickup, dropoff], _MIN_MILES)
    return np.column_stack(
        [features, pickup == dropoff, table.minutes[pickup, dropoff], ratio]
    ).astype(np.float64)
