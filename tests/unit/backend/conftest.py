"""Backend app built by its factory with hand-written fakes for the stream."""

import json
from collections.abc import Callable
from typing import Any

import pytest

from backend_service import create_app
from backend_service.config import Config
from backend_service.stream import StreamUnavailable


class FakePublisher:
    """Records rides; answers each one through `respond`, or fails like a down stream."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.respond: Callable[[str, dict[str, Any]], None] = lambda ride_id, ride: None
        self.fail = False
        self.healthy = True

    def publish(self, data: bytes, ride_id: str, reply_to: str) -> str:
        if self.fail:
            self.healthy = False
            raise StreamUnavailable("emulated outage")
        message = json.loads(data)
        self.published.append({"message": message, "ride_id": ride_id, "reply_to": reply_to})
        self.respond(ride_id, message["features"])
        return str(len(self.published))


class FakeListener:
    reply_to = "backend-under-test"

    def __init__(self) -> None:
        self.running = False
        self.closed = False

    def start(self) -> None:
        self.running = True

    def close(self) -> None:
        self.closed = True
        self.running = False


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def listener() -> FakeListener:
    return FakeListener()


@pytest.fixture
def app(publisher: FakePublisher, listener: FakeListener):
    config = Config(project_id="test-project", result_timeout_s=0.2, max_body_bytes=2048)
    app = create_app(config, publisher=publisher, listener=listener)  # type: ignore[arg-type]
    store = app.extensions["backend"].store
    # By default the stream answers at once with a duration derived from the distance.
    publisher.respond = lambda ride_id, ride: store.complete(
        ride_id, round(ride["trip_distance"] * 3, 2), "ride-duration/7"
    )
    return app


@pytest.fixture
def client(app):
    return app.test_client()


RIDE = {
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 2.5,
    "datetime": "2021-02-03T08:30:00",
}
