"""Fit the backend's coarse estimator: distance curve, hour offsets, shrunk zone-pair offsets."""

import numpy as np
import numpy.typing as npt
import pandas as pd

from backend_service.coarse import CoarseEstimator

KNOTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 14.0, 20.0, 30.0, 50.0, 200.0)
# A pair's offset is shrunk toward zero as if it had this many extra rides at the global curve:
# rare pairs borrow strength from the curve (chosen on the 2021-02 validation month).
PAIR_PRIOR_RIDES = 5
ROUNDS = 8  # backfitting rounds; the validation error stops moving after about five


def _hat_basis(miles: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    knots = np.asarray(KNOTS)
    x = np.clip(miles, knots[0], knots[-1])
    i = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, len(knots) - 2)
    share = (x - knots[i]) / (knots[i + 1] - knots[i])
    basis = np.zeros((len(x), len(knots)))
    rows = np.arange(len(x))
    basis[rows, i] = 1 - share
    basis[rows, i + 1] = share
    return basis


def fit_coarse(trips: pd.DataFrame, version: str) -> CoarseEstimator:
    """Fit by backfitting: each part on what the other two leave unexplained."""
    y = trips.duration.to_numpy()
    basis = _hat_basis(trips.trip_distance.to_numpy(dtype=float))
    pickup = trips.lpep_pickup_datetime
    hour_slot = pickup.dt.hour.to_numpy() + 24 * (pickup.dt.day_of_week.to_numpy() >= 5)
    pair = trips.PULocationID.to_numpy() * 1000 + trips.DOLocationID.to_numpy()
    pairs, pair_index = np.unique(pair, return_inverse=True)
    pair_counts = np.bincount(pair_index)
    pair_offset = np.zeros(len(pairs))
    hour_offset = np.zeros(48)
    slot_counts = np.maximum(np.bincount(hour_slot, minlength=48), 1)
    for _ in range(ROUNDS):
        curve = np.linalg.lstsq(basis, y - pair_offset[pair_index] - hour_offset[hour_slot])[0]
        residual = y - basis @ curve - hour_offset[hour_slot]
        pair_offset = np.bincount(pair_index, residual) / (pair_counts + PAIR_PRIOR_RIDES)
        residual = y - basis @ curve - pair_offset[pair_index]
        hour_offset = np.bincount(hour_slot, residual, minlength=48) / slot_counts
    return CoarseEstimator(
        knots=KNOTS,
        minutes=tuple(float(m) for m in curve),
        hour_offsets=(tuple(hour_offset[:24].tolist()), tuple(hour_offset[24:].tolist())),
        pair_offsets={
            (int(p // 1000), int(p % 1000)): float(o)
            for p, o in zip(pairs, pair_offset, strict=True)
        },
        version=version,
    )


def predict_many(estimator: CoarseEstimator, trips: pd.DataFrame) -> list[float]:
    """Evaluate the estimator exactly as the backend does, ride by ride."""
    return [
        estimator.estimate(int(pu), int(do), float(miles), when.to_pydatetime())
        for pu, do, miles, when in zip(
            trips.PULocationID,
            trips.DOLocationID,
            trips.trip_distance,
            trips.lpep_pickup_datetime,
            strict=True,
        )
    ]
