"""Fit the zone-pair table the accurate model looks up, without leaking targets into training."""

import numpy as np
import numpy.typing as npt
import pandas as pd

from predictor_service.features import DERIVED_FEATURE_NAMES, PairTable, add_pair_features

# Each training ride sees a table fitted on the other folds: with its own duration inside the
# median, the booster would trust pair_minutes more than it deserves on new rides.
FOLDS = 5
SEED = 42


def fit_pair_table(trips: pd.DataFrame) -> PairTable:
    """Median minutes and miles per (pickup, dropoff) zone pair, rounded as serialised."""
    medians = (
        trips.groupby(["PULocationID", "DOLocationID"])
        .agg(minutes=("duration", "median"), miles=("trip_distance", "median"))
        .round(3)
        .reset_index()
    )
    return PairTable(medians.itertuples(index=False, name=None))  # type: ignore[arg-type]


def out_of_fold_features(
    trips: pd.DataFrame, features: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Add the pair columns to the training rows, each from a table that excludes its fold."""
    fold = np.random.default_rng(SEED).integers(0, FOLDS, len(trips))
    columns = features.shape[1] + len(DERIVED_FEATURE_NAMES)
    out = np.empty((len(trips), columns))
    for k in range(FOLDS):
        rows = fold == k
        out[rows] = add_pair_features(features[rows], fit_pair_table(trips[~rows]))
    return out
