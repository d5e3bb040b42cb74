"""Small real MLflow models of every kind the predictor serves, trained on a few rows in the test.

Saved with MLflow's own `save_model` into a folder: a local MODEL_URI. Requirements are given,
because inferring them loads the model again in a child process, for seconds each.
"""

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from predictor_service.features import FEATURE_NAMES

ROWS = 60
REQUIREMENTS = ["mlflow", "scikit-learn", "lightgbm"]
COURSE_ROWS = [
    {"PU_DO": f"{pu}_{do}", "trip_distance": miles}
    for pu, do, miles in zip(
        range(70, 70 + ROWS), range(130, 130 + ROWS), np.linspace(0.5, 20, ROWS), strict=True
    )
]
RIDE_SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("long", "PULocationID"),
            ColSpec("long", "DOLocationID"),
            ColSpec("double", "trip_distance"),
            ColSpec("datetime", "lpep_pickup_datetime"),
        ]
    )
)


def course_pipeline(signature: bool = True) -> tuple[Any, Any]:
    """The course's DictVectorizer + LinearRegression on a few rows; also its MLflow signature."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    minutes = np.array([3.0 * row["trip_distance"] + 2 for row in COURSE_ROWS])
    pipeline = make_pipeline(DictVectorizer(), LinearRegression()).fit(COURSE_ROWS, minutes)
    inferred = infer_signature(COURSE_ROWS[:3], pipeline.predict(COURSE_ROWS[:3]))
    return pipeline, inferred if signature else None


def save_course_pipeline(folder: Path, signature: bool = True) -> Any:
    """Save the course's pipeline as mlflow.sklearn does; return the fitted pipeline."""
    pipeline, inferred = course_pipeline(signature)
    mlflow.sklearn.save_model(
        pipeline, str(folder), signature=inferred, pip_requirements=REQUIREMENTS
    )
    return pipeline


def ride_frame() -> pd.DataFrame:
    """A few raw rides as the TLC data has them."""
    return pd.DataFrame(
        {
            "PULocationID": np.arange(ROWS) % 20 + 60,
            "DOLocationID": np.arange(ROWS) % 30 + 120,
            "trip_distance": np.linspace(0.5, 20, ROWS),
        }
    )


def save_native_booster(folder: Path) -> Any:
    """A LightGBM Booster on the project's FEATURE_NAMES, saved with mlflow.lightgbm (the
    predictor's native path); return it."""
    import lightgbm

    frame = ride_frame().assign(pickup_hour=8.0, pickup_day_of_week=2.0)
    booster = lightgbm.train(
        {"verbose": -1, "min_data_in_leaf": 2}, lightgbm.Dataset(frame, frame.trip_distance * 3),
        num_boost_round=3,
    )  # fmt: skip
    mlflow.lightgbm.save_model(booster, str(folder), pip_requirements=REQUIREMENTS)
    return booster


def save_lgbm_regressor(folder: Path) -> Any:
    """An LGBMRegressor on the raw ride's columns, saved with mlflow.lightgbm; return it."""
    import lightgbm

    frame = ride_frame()
    model = lightgbm.LGBMRegressor(n_estimators=10, min_child_samples=2, verbose=-1)
    model.fit(frame, 3.0 * frame.trip_distance + 2)
    mlflow.lightgbm.save_model(
        model, str(folder), input_example=frame.head(2), pip_requirements=REQUIREMENTS
    )
    return model


def save_features_regression(folder: Path) -> Any:
    """A LinearRegression on the project's FEATURE_NAMES columns, saved without a signature."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.uniform(1, 20, (ROWS, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    model = LinearRegression().fit(frame, 2.0 * frame.trip_distance + frame.pickup_hour)
    mlflow.sklearn.save_model(model, str(folder), pip_requirements=REQUIREMENTS)
    return model


# MLflow advises typing predict() (a UserWarning, under its own `simplefilter("once")`, which no
# filter of ours overrides); type hints would add MLflow's own checks of the input.
def ride_minutes() -> PythonModel:
    """Two minutes plus three a mile plus a tenth of the pickup hour: every column counts."""

    # Defined here, so cloudpickle saves the class by value: the predictor needs no test code.
    class RideMinutes(PythonModel):  # type: ignore[misc]
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            hours = pd.to_datetime(model_input["lpep_pickup_datetime"]).dt.hour
            return (2 + 3 * model_input["trip_distance"] + hours / 10).to_numpy()

    return RideMinutes()


def answers(answer: Any) -> PythonModel:
    """A model that answers `answer` (or raises it) whatever the input: broken in a chosen way."""

    class Answers(PythonModel):  # type: ignore[misc]
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            if isinstance(answer, Exception):
                raise answer
            return answer

    return Answers()


def save_pyfunc(folder: Path, model: PythonModel, signature: ModelSignature | None) -> None:
    """Save a PythonModel with `signature`."""
    mlflow.pyfunc.save_model(
        str(folder), python_model=model, signature=signature, pip_requirements=REQUIREMENTS
    )


def save_unfeedable(folder: Path) -> None:
    """A LinearRegression on passenger_count and trip_distance: no ride has a passenger count."""
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"passenger_count": np.arange(ROWS) % 4 + 1.0, "trip_distance": 1.0})
    frame["trip_distance"] = np.linspace(0.5, 20, ROWS)
    model = LinearRegression().fit(frame, frame.trip_distance * 3)
    signature = infer_signature(frame.head(3), model.predict(frame.head(3)))
    mlflow.sklearn.save_model(
        model, str(folder), signature=signature, pip_requirements=REQUIREMENTS
    )
