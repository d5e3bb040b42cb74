"""What the predictor must answer for a ride, as the backend's API takes it."""

from datetime import datetime
from typing import Any

from predictor_service.model import ServingModel


def expected_duration(model: ServingModel, ride: dict[str, Any]) -> float:
    """Return the duration `model` predicts for `ride`, through the predictor's own features."""
    when = datetime.fromisoformat(ride["datetime"])
    return model.duration(ride["PULocationID"], ride["DOLocationID"], ride["trip_distance"], when)
