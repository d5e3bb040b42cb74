"""Read TLC green-taxi trips and turn them into features and targets."""

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from predictor_service.features import prepare_features

DATA_DIR = Path(__file__).with_name("data")
TRAIN_FILE = DATA_DIR / "green_tripdata_2021-01.parquet"
VALID_FILE = DATA_DIR / "green_tripdata_2021-02.parquet"
# The course's filter: rides of 1 to 60 minutes.
MIN_MINUTES, MAX_MINUTES = 1.0, 60.0
COLUMNS = [
    "lpep_pickup_datetime",
    "lpep_dropoff_datetime",
    "PULocationID",
    "DOLocationID",
    "trip_distance",
]


def load_trips(path: Path) -> pd.DataFrame:
    """Read one month of trips with a `duration` column in minutes, filtered to 1-60 minutes."""
    trips = pd.read_parquet(path, columns=COLUMNS)
    duration = trips.lpep_dropoff_datetime - trips.lpep_pickup_datetime
    trips["duration"] = duration.dt.total_seconds() / 60
    keep = trips.duration.between(MIN_MINUTES, MAX_MINUTES)
    return trips[keep].reset_index(drop=True)


def features(trips: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Build the feature matrix with the predictor's own function."""
    return prepare_features(
        trips.PULocationID.to_numpy(),
        trips.DOLocationID.to_numpy(),
        trips.trip_distance.to_numpy(),
        trips.lpep_pickup_datetime.to_numpy(dtype="datetime64[ns]"),
    )


def rmse(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Root mean squared error in minutes."""
    error = np.asarray(predicted, dtype=float) - np.asarray(actual, dtype=float)
    return float(np.sqrt(np.mean(error**2)))
