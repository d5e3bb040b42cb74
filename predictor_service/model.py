"""Load the model once, from a local folder or any MLflow URI, and check it predicts.

The model's own MLmodel file chooses how it is served: the project's LightGBM booster (a
`lightgbm` flavor holding a Booster's text file, its features ours) through LightGBM's C API
(native.py), anything else through mlflow.pyfunc (pyfunc.py), imported only then. A remote URI is
downloaded by a child process (fetch.py), so this process never imports MLflow for the booster.
A revision made by a deploy names its version (MODEL_VERSION, pinned when the revision was made):
results carry it, and a URI that resolves to another version is refused rather than served.
"""

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import yaml

from .features import (
    FEATURE_NAMES,
    MODEL_FEATURE_NAMES,
    PAIR_TABLE_FILE,
    PairTable,
    add_pair_features,
    local_time,
    prepare_features,
)
from .fetch import fetch_in_child, named_version
from .native import NativeBooster

log = logging.getLogger(__name__)

# The start-up check's ride: a weekday-morning trip the training month has many of.
CHECK_RIDE = (74, 75, 2.5, datetime(2021, 2, 3, 13, 30, tzinfo=UTC))
_BOOSTER_CLASSES = (None, "lightgbm.basic.Booster")  # older MLmodel files name no class


class ModelLoadError(RuntimeError):
    """The model at MODEL_URI cannot be resolved, downloaded, read, fed or trusted."""


class ServingModel(Protocol):
    """What the push route needs of a model: its version, and one ride's duration."""

    @property
    def version(self) -> str: ...

    def duration(
        self, pickup_zone: int, dropoff_zone: int, miles: float, when: datetime
    ) -> float: ...


@dataclass(frozen=True)
class LoadedModel:
    version: str
    booster: Any  # NativeBooster, or anything with lightgbm.Booster's predict()
    pairs: PairTable | None = None  # the zone-pair table the booster was trained with, if any

    def predict(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return one duration in minutes per row of FEATURE_NAMES columns."""
        if self.pairs is not None:
            features = add_pair_features(features, self.pairs)
        # One thread: requests are already concurrent, and OpenMP start-up costs more than a
        # single-row prediction.
        return np.asarray(self.booster.predict(features, num_threads=1))

    def duration(self, pickup_zone: int, dropoff_zone: int, miles: float, when: datetime) -> float:
        """Return one ride's duration in minutes, rounded as results carry it."""
        features = prepare_features([pickup_zone], [dropoff_zone], [miles], [local_time(when)])
        return round(float(self.predict(features)[0]), 2)


def load_model(
    uri: str, model_input: str | None = None, pinned_version: str | None = None
) -> ServingModel:
    """Resolve `uri` to a model folder, load and check it; raise ModelLoadError if anything fails.

    `model_input` (MODEL_INPUT) names the inputs of a pyfunc model that has no signature.
    `pinned_version` (MODEL_VERSION) is the version the revision was made with: the one results
    carry, and the only one `uri` may resolve to.
    """
    try:
        if pinned_version:
            # before any download: a URI that names another version can never be served
            _check_version(uri, named_version(uri), pinned_version)
        local = _local_path(uri)
        version = None
        if local is None:
            log.info("downloading model artifacts", extra={"model_uri": uri})
            started = time.monotonic()
            local, version = fetch_in_child(uri, Path(tempfile.mkdtemp(prefix="model-")))
            seconds = round(time.monotonic() - started, 3)
            log.info("downloaded model artifacts", extra={"model_uri": uri, "seconds": seconds})
        mlmodel = _mlmodel(local)
        if pinned_version:
            _check_version(uri, version, pinned_version)  # an alias, as the download resolved it
            _check_run(local, mlmodel, pinned_version)
            version = pinned_version
        model = _load_folder(local, mlmodel, version, model_input)
        check(model)
        return model
    except ModelLoadError:
        raise
    except Exception as err:  # MLflow, boto3 and the model's library raise many unrelated types
        raise ModelLoadError(f"cannot load model {uri!r}: {type(err).__name__}: {err}") from err


def check(model: ServingModel) -> None:
    """Predict one known ride; raise ModelLoadError unless the answer is a finite number."""
    try:
        minutes = model.duration(*CHECK_RIDE)
    except Exception as err:  # whatever the model's library raises, the model cannot serve
        raise ModelLoadError(
            f"the model failed its start-up prediction: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(minutes, float) or not math.isfinite(minutes):
        raise ModelLoadError(f"the model's start-up prediction is not a finite number: {minutes}")
    log.info("start-up prediction", extra={"minutes": minutes, "model_version": model.version})


def _check_version(uri: str, resolved: str | None, pinned: str) -> None:
    """Refuse a URI that resolves to another version than the revision was made with."""
    if resolved is not None and resolved != pinned:
        raise ModelLoadError(
            f"{uri!r} resolves to {resolved}, but this revision was made with MODEL_VERSION="
            f"{pinned}: refusing to serve another version (deploy a new revision to change it)"
        )


def _check_run(folder: Path, mlmodel: dict[str, Any], pinned: str) -> None:
    """Refuse a folder logged by another run than the one MODEL_VERSION=run:<id> names."""
    run_id = mlmodel.get("run_id") if pinned.startswith("run:") else None
    if run_id and f"run:{run_id}" != pinned:
        raise ModelLoadError(
            f"{folder} holds the model of run {run_id}, but this revision was made with "
            f"MODEL_VERSION={pinned}: refusing to serve another version"
        )


def _mlmodel(folder: Path) -> dict[str, Any]:
    mlmodel_path = folder / "MLmodel"
    if not mlmodel_path.is_file():
        raise ModelLoadError(f"{folder} is not an MLflow model folder (no MLmodel file)")
    return yaml.safe_load(mlmodel_path.read_text()) or {}


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if "://" in uri or uri.startswith(("models:", "runs:")):
        return None
    return Path(uri)


def _load_folder(
    folder: Path, mlmodel: dict[str, Any], version: str | None, model_input: str | None
) -> ServingModel:
    version = version or _version(mlmodel)
    native = _native(folder, mlmodel, version)
    if native is not None:
        return native
    from . import pyfunc  # only for a model the native path cannot take

    try:
        return pyfunc.load(folder, version, mlmodel, model_input)
    except pyfunc.InputMismatch as err:
        raise ModelLoadError(f"{folder}: cannot feed this model: {err}") from err


def _native(folder: Path, mlmodel: dict[str, Any], version: str) -> LoadedModel | None:
    """The project's booster through LightGBM's C API; None for any other model."""
    flavor = (mlmodel.get("flavors") or {}).get("lightgbm")
    if not flavor or flavor.get("model_class") not in _BOOSTER_CLASSES:
        return None
    booster = NativeBooster(folder / flavor["data"])
    # training logs the pair table beside the booster (mlflow's extra_files)
    table_path = folder / "extra_files" / PAIR_TABLE_FILE
    pairs = PairTable.from_json(table_path.read_text()) if table_path.is_file() else None
    if booster.num_features != len(MODEL_FEATURE_NAMES if pairs else FEATURE_NAMES):
        log.info("the booster's features are not the project's: serving it through pyfunc")
        return None
    return LoadedModel(version=version, booster=booster, pairs=pairs)


def _version(mlmodel: dict[str, Any]) -> str:
    """A model from a folder: the run that logged it, else MLflow's model id."""
    if mlmodel.get("run_id"):
        return f"run:{mlmodel['run_id']}"
    return str(mlmodel.get("model_id") or mlmodel.get("model_uuid") or "unknown")
