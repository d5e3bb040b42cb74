"""Backend app built by its factory with hand-written fakes for the stream."""

import pytest

from backend_service import create_app
from backend_service.config import Config
from tests.kit.fakes import FakeListener, FakeRidePublisher


@pytest.fixture
def publisher() -> FakeRidePublisher:
    return FakeRidePublisher()


@pytest.fixture
def listener() -> FakeListener:
    return FakeListener()


@pytest.fixture
def app(publisher: FakeRidePublisher, listener: FakeListener):
    config = Config(
        project_id="test-project", result_timeout_s=0.2, max_body_bytes=2048, ride_store="memory"
    )
    app = create_app(config, publisher=publisher, listener=listener)  # type: ignore[arg-type]
    store = app.extensions["backend"].rides
    # By default the stream answers at once with a duration derived from the distance.
    publisher.respond = lambda ride_id, ride: store.complete(
        ride_id, round(ride["trip_distance"] * 3, 2), "ride-duration/7"
    )
    return app


@pytest.fixture
def client(app):
    return app.test_client()
