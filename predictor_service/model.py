"""Load the MLflow-logged LightGBM model once, from a local folder or any MLflow URI."""

import logging
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

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
from .native import NativeBooster

log = logging.getLogger(__name__)

_MODELS_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_MODELS_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


class ModelLoadError(RuntimeError):
    """The model at MODEL_URI cannot be resolved, downloaded or read."""


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


def load_model(uri: str) -> LoadedModel:
    """Resolve `uri` to a model folder and load it; raise ModelLoadError if anything fails."""
    try:
        local = _local_path(uri)
        if local is not None:
            return _load_folder(local, version=None)
        pinned_uri, version = _pin(uri)
        folder = _download(pinned_uri)
        return _load_folder(folder, version)
    except ModelLoadError:
        raise
    except Exception as err:  # MLflow, boto3 and lightgbm raise many unrelated types
        raise ModelLoadError(f"cannot load model {uri!r}: {type(err).__name__}: {err}") from err


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if "://" in uri or uri.startswith(("models:", "runs:")):
        return None
    return Path(uri)


def _pin(uri: str) -> tuple[str, str | None]:
    """Resolve a registry alias to its version first, so the version reported is the one loaded."""
    from mlflow import MlflowClient  # imported only when the registry is used: it is slow

    if match := _MODELS_ALIAS.match(uri):
        name = match["name"]
        version = MlflowClient().get_model_version_by_alias(name, match["alias"]).version
        return f"models:/{name}/{version}", f"{name}/{version}"
    if match := _MODELS_VERSION.match(uri):
        return uri, f"{match['name']}/{match['version']}"
    return uri, None


def _download(uri: str) -> Path:
    import mlflow.artifacts

    target = tempfile.mkdtemp(prefix="model-")
    log.info("downloading model artifacts", extra={"model_uri": uri})
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=target))


def _load_folder(folder: Path, version: str | None) -> LoadedModel:
    mlmodel_path = folder / "MLmodel"
    if not mlmodel_path.is_file():
        raise ModelLoadError(f"{folder} is not an MLflow model folder (no MLmodel file)")
    mlmodel = yaml.safe_load(mlmodel_path.read_text())
    flavor = (mlmodel.get("flavors") or {}).get("lightgbm")
    if not flavor:
        raise ModelLoadError(f"{folder} holds no lightgbm flavor; found {list(mlmodel['flavors'])}")
    booster = NativeBooster(folder / flavor["data"])
    # training logs the pair table beside the booster (mlflow's extra_files)
    table_path = folder / "extra_files" / PAIR_TABLE_FILE
    pairs = PairTable.from_json(table_path.read_text()) if table_path.is_file() else None
    expected = len(MODEL_FEATURE_NAMES if pairs else FEATURE_NAMES)
    if booster.num_features != expected:
        raise ModelLoadError(
            f"{folder}: the booster takes {booster.num_features} features, but with"
            f"{'' if pairs else 'out'} a pair table the predictor gives it {expected}"
        )
    if version is None:
        version = mlmodel.get("model_id") or f"run:{mlmodel.get('run_id', 'unknown')}"
    return LoadedModel(version=str(version), booster=booster, pairs=pairs)
