"""Serve any other MLflow model through mlflow.pyfunc, the ride turned into what it expects.

Imported only for a model the native path cannot take: mlflow.pyfunc, pandas and the model's
own library (scikit-learn, lightgbm, ...) are loaded with it, never for the native booster.
"""

import logging
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .inputs import InputAdapter, InputMismatch, choose, ride

__all__ = ["InputMismatch", "PyfuncModel", "load", "one_number"]

log = logging.getLogger(__name__)


class PyfuncModel:
    """An MLflow model behind mlflow.pyfunc, fed one ride at a time through its adapter."""

    def __init__(self, version: str, predict: Callable[[Any], Any], adapter: InputAdapter) -> None:
        self.version = version
        self.adapter = adapter
        self._predict = predict

    def duration(self, pickup_zone: int, dropoff_zone: int, miles: float, when: datetime) -> float:
        """Return one ride's duration in minutes, rounded as results carry it."""
        output = self._predict(self.adapter.frame(ride(pickup_zone, dropoff_zone, miles, when)))
        return round(one_number(output), 2)


def one_number(output: Any) -> float:
    """The single number a model returned for one ride; ValueError for any other answer."""
    values = np.asarray(getattr(output, "values", output), dtype=object).ravel()
    if values.size != 1:
        raise ValueError(f"expected one number for one ride, got {values.size} values")
    try:
        value = float(values[0])
    except (TypeError, ValueError) as err:
        raise ValueError(f"expected a number, got {values[0]!r}") from err
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return value


def load(
    folder: Path, version: str, mlmodel: Mapping[str, Any], model_input: str | None
) -> PyfuncModel:
    """Load `folder` with mlflow.pyfunc; the adapter is chosen before anything heavy loads."""
    adapter = choose(mlmodel.get("signature"), model_input)
    import mlflow.pyfunc  # the pyfunc path only: it is slow to import and large

    model = mlflow.pyfunc.load_model(str(folder))
    predict: Callable[[Any], Any] = model.predict
    raw = _sklearn_model(model, mlmodel)
    if raw is not None and _takes_mappings(raw):
        # The course's pipeline starts with a DictVectorizer, which reads dicts; pyfunc's
        # signature check hands it a DataFrame, whose iteration yields column names instead.
        adapter = adapter.with_records()
        predict = raw.predict
    log.info(
        "serving through mlflow.pyfunc",
        extra={"inputs": [name for name, _ in adapter.columns], "input_source": adapter.source,
               "input_kind": adapter.kind, "records": adapter.records},
    )  # fmt: skip
    return PyfuncModel(version, predict, adapter)


def _sklearn_model(model: Any, mlmodel: Mapping[str, Any]) -> Any:
    if "sklearn" not in (mlmodel.get("flavors") or {}):
        return None
    try:
        return model.get_raw_model()
    except NotImplementedError:
        return None


def _takes_mappings(estimator: Any) -> bool:
    from sklearn.feature_extraction import DictVectorizer, FeatureHasher

    steps = getattr(estimator, "steps", None)
    first = steps[0][1] if steps else estimator
    return isinstance(first, DictVectorizer) or (
        isinstance(first, FeatureHasher) and first.input_type == "dict"
    )
