"""Predictor app built by its factory with a fake model and a fake publisher."""

import pytest

from predictor_service import create_app
from predictor_service.config import Config
from predictor_service.model import LoadedModel
from tests.kit.fakes import FakeBooster, FakeResultPublisher


@pytest.fixture
def publisher() -> FakeResultPublisher:
    return FakeResultPublisher()


@pytest.fixture
def client(publisher: FakeResultPublisher):
    config = Config(project_id="test-project", model_uri="unused", max_envelope_bytes=64 * 1024)
    model = LoadedModel(version="ride-duration/3", booster=FakeBooster())
    return create_app(config, model=model, publisher=publisher).test_client()  # type: ignore[arg-type]
