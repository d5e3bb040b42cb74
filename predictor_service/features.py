"""Feature preparation shared by training and serving, so both see the same numbers."""

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

# TLC timestamps are New York wall-clock time; traffic follows local hours.
NYC = ZoneInfo("America/New_York")
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
