"""Turn a ride into the inputs a model expects, chosen once from its signature or MODEL_INPUT.

Only the pyfunc path imports this module (it needs pandas); the native booster never does.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from .config import MODEL_INPUTS
from .features import FEATURE_NAMES, local_time, prepare_features

COURSE, RIDE, FEATURES = MODEL_INPUTS
PICKUP_TIME_NAMES = ("lpep_pickup_datetime", "tpep_pickup_datetime", "pickup_datetime", "datetime")


@dataclass(frozen=True)
class Ride:
    pickup_zone: int
    dropoff_zone: int
    miles: float
    local: datetime  # naive New York wall-clock time, as the TLC data and the models have it


def _feature(index: int) -> Callable[[Ride], float]:
    def column(r: Ride) -> float:
        row = prepare_features([r.pickup_zone], [r.dropoff_zone], [r.miles], [r.local])
        return float(row[0, index])

    return column


# Every column the predictor can give a model, by the name a model's signature uses for it.
PROVIDERS: dict[str, Callable[[Ride], Any]] = {
    "PU_DO": lambda r: f"{r.pickup_zone}_{r.dropoff_zone}",  # the course's pair feature
    "PULocationID": lambda r: r.pickup_zone,
    "DOLocationID": lambda r: r.dropoff_zone,
    "trip_distance": lambda r: r.miles,
    **{name: (lambda r: r.local) for name in PICKUP_TIME_NAMES},
    "pickup_hour": _feature(FEATURE_NAMES.index("pickup_hour")),
    "pickup_day_of_week": _feature(FEATURE_NAMES.index("pickup_day_of_week")),
}
# What each MODEL_INPUT kind gives a model without a signature: (name, MLflow type).
KIND_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    COURSE: (("PU_DO", "string"), ("trip_distance", "double")),
    RIDE: (
        ("PULocationID", "long"),
        ("DOLocationID", "long"),
        ("trip_distance", "double"),
        ("lpep_pickup_datetime", "datetime"),
    ),
    FEATURES: tuple((name, "double") for name in FEATURE_NAMES),
}
# MLflow column types, as numpy dtypes the signature check accepts without converting.
DTYPES: dict[str, Any] = {
    "string": object,
    "long": np.int64,
    "integer": np.int32,
    "double": np.float64,
    "float": np.float32,
    "datetime": "datetime64[ns]",
}


class InputMismatch(ValueError):
    """The model takes inputs the predictor cannot provide; the message lists both sides."""


@dataclass(frozen=True)
class InputAdapter:
    """Build the one-row input of a model: named columns of given MLflow types."""

    columns: tuple[tuple[str, str], ...]
    source: str  # "signature" or "MODEL_INPUT=<kind>", for the start-up log
    records: bool = False  # a list of dicts (the course's DictVectorizer), not a DataFrame

    @property
    def kind(self) -> str:
        """The MODEL_INPUT kind of these columns, or "columns" for any other set."""
        names = {name for name, _ in self.columns}
        matches = (k for k, columns in KIND_COLUMNS.items() if names == {n for n, _ in columns})
        return next(matches, "columns")

    def values(self, ride: Ride) -> dict[str, Any]:
        """The ride's columns, each cast to the type the model declares."""
        return {name: _cast(PROVIDERS[name](ride), kind) for name, kind in self.columns}

    def frame(self, ride: Ride) -> Any:
        """The model's input for one ride."""
        values = self.values(ride)
        if self.records:
            return [values]
        return pd.DataFrame(
            {name: np.array([values[name]], dtype=DTYPES[kind]) for name, kind in self.columns}
        )

    def with_records(self) -> "InputAdapter":
        """The same columns, given as a list of dicts."""
        return InputAdapter(self.columns, self.source, records=True)


def ride(pickup_zone: int, dropoff_zone: int, miles: float, when: datetime) -> Ride:
    """A ride as the adapters take it, its pickup time in New York wall-clock time."""
    return Ride(pickup_zone, dropoff_zone, miles, local_time(when))


def choose(signature: Mapping[str, Any] | None, model_input: str | None) -> InputAdapter:
    """The adapter for a model's signature (MLmodel `signature`), else for `model_input`."""
    inputs = json.loads(signature["inputs"]) if signature and signature.get("inputs") else None
    named = inputs is not None and all(i.get("name") and i.get("type") != "tensor" for i in inputs)
    if inputs is not None and named:
        return _from_signature(inputs)
    if model_input in KIND_COLUMNS:
        return InputAdapter(KIND_COLUMNS[model_input], f"MODEL_INPUT={model_input}")
    described = _describe(inputs) if inputs else "no signature"
    raise InputMismatch(
        f"the model's inputs are {described}, and MODEL_INPUT is "
        f"{'unset' if model_input is None else repr(model_input)}: set MODEL_INPUT to one of "
        f"{_kinds()} to say what the model takes"
    )


def _from_signature(inputs: list[dict[str, Any]]) -> InputAdapter:
    missing = [i for i in inputs if i["name"] not in PROVIDERS and i.get("required", True)]
    unknown_types = [i for i in inputs if i["type"] not in DTYPES]
    if missing or unknown_types:
        raise InputMismatch(
            f"the model's inputs are {_describe(inputs)}; the predictor can provide "
            f"{', '.join(PROVIDERS)} (of types {', '.join(DTYPES)}), or one of {_kinds()} "
            "through MODEL_INPUT for a model without a signature"
        )
    provided = tuple((i["name"], i["type"]) for i in inputs if i["name"] in PROVIDERS)
    return InputAdapter(provided, "signature")


def _describe(inputs: list[dict[str, Any]]) -> str:
    return "[" + ", ".join(f"{i.get('name', '(unnamed)')}: {i.get('type')}" for i in inputs) + "]"


def _kinds() -> str:
    return "; ".join(
        f"{kind} ({', '.join(name for name, _ in columns)})"
        for kind, columns in KIND_COLUMNS.items()
    )


def _cast(value: Any, kind: str) -> Any:
    if kind == "string":
        return value.isoformat() if isinstance(value, datetime) else str(value)
    if kind in ("long", "integer"):
        return int(value)
    if kind in ("double", "float"):
        return float(value)
    return np.datetime64(value, "ns")
