"""The model the session trains once on the project's TLC data (the `trained_model` fixture)."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainedModel:
    tracking_uri: str
    model_uri: str  # models:/ride-duration@production
    folder: Path  # the logged MLflow model folder, usable as a local MODEL_URI
    figures: dict[str, float | str]
