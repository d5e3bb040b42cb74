"""Predictor app built by its factory with a fake model and a fake publisher."""

import json
from typing import Any

import numpy as np
import pytest

from predictor_service import create_app
from predictor_service.config import Config
from predictor_service.errors import TransientError
from predictor_service.model import LoadedModel


class FakeBooster:
    """Predicts three minutes a mile, so a crossed result is easy to see."""

    def predict(self, features: np.ndarray, num_threads: int = 0) -> np.ndarray:
        return features[:, 2] * 3.0


class FakePublisher:
    def __init__(self) -> None:
        self.results: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.dead_letters: list[tuple[bytes, dict[str, str]]] = []
        self.fail = False

    def publish_result(self, data: bytes, attributes: dict[str, str]) -> str:
        if self.fail:
            raise TransientError("emulated outage")
        self.results.append((json.loads(data), attributes))
        return "r"

    def dead_letter(self, data: bytes, attributes: dict[str, str]) -> str:
        if self.fail:
            raise TransientError("emulated outage")
        self.dead_letters.append((data, attributes))
        return "d"


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(publisher: FakePublisher):
    config = Config(project_id="test-project", model_uri="unused", max_envelope_bytes=64 * 1024)
    model = LoadedModel(version="ride-duration/3", booster=FakeBooster())
    return create_app(config, model=model, publisher=publisher).test_client()  # type: ignore[arg-type]


def ride_message(ride_id: str = "r1", **features: Any) -> bytes:
    base = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 2.5,
            "datetime": "2021-02-03T08:30:00"}  # fmt: skip
    return json.dumps({"ride_id": ride_id, "features": base | features}).encode()
