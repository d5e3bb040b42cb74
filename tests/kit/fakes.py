"""Hand-written fakes of the services' collaborators: the stream, the model, Pub/Sub clients."""

import json
from collections.abc import Callable
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import numpy as np

from backend_service.listener import ResultListener
from backend_service.publisher import StreamUnavailable
from predictor_service.errors import TransientError


class FakeRidePublisher:
    """Records rides; answers each one through `respond`, or fails like a down stream."""

    topic_name = "rides"

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.respond: Callable[[str, dict[str, Any]], None] = lambda ride_id, ride: None
        self.fail = False
        self.healthy = True

    def publish(
        self, data: bytes, ride_id: str, reply_to: str, trace: dict[str, str] | None = None
    ) -> str:
        if self.fail:
            self.healthy = False
            raise StreamUnavailable("emulated outage")
        message = json.loads(data)
        self.published.append(
            {"message": message, "ride_id": ride_id, "reply_to": reply_to, "trace": trace or {}}
        )
        self.respond(ride_id, message["features"])
        return str(len(self.published))

    def publish_all(self, rides: list[tuple[bytes, str]], reply_to: str) -> int:
        failed = 0
        for data, ride_id in rides:
            try:
                self.publish(data, ride_id, reply_to)
            except StreamUnavailable:
                failed += 1
        return failed


class FakeListener:
    """The backend's result listener, minus the stream: records whether it runs."""

    reply_to = "backend-under-test"

    def __init__(self) -> None:
        self.running = False
        self.closed = False
        self.problem: str | None = None
        self.on_resubscribed: Callable[[], object] | None = None

    def start(self) -> None:
        self.running = True

    def close(self) -> None:
        self.closed = True
        self.running = False

    def ensure_open(self) -> bool:
        return self.running


class FakeBooster:
    """Predicts three minutes a mile, so a crossed result is easy to see."""

    def predict(self, features: np.ndarray, num_threads: int = 0) -> np.ndarray:
        return features[:, 2] * 3.0


class FakeResultPublisher:
    """Records results and dead letters, or fails both like a down stream."""

    results_topic_name = "results"

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


class FakePublisherClient:
    """Pub/Sub's PublisherClient: records each publish; its future holds `outcome`."""

    def __init__(self, outcome: object = "id-1") -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, bytes, dict[str, Any]]] = []

    def publish(self, topic: str, data: bytes, **attributes: Any) -> Future:
        self.calls.append((topic, data, attributes))
        future: Future = Future()
        if isinstance(self.outcome, Exception):
            future.set_exception(self.outcome)
        else:
            future.set_result(self.outcome)
        return future


def received_message(data: object, **attributes: str) -> SimpleNamespace:
    """Return a message as a streaming pull hands it over; `acked` says whether it was acked."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    msg = SimpleNamespace(data=raw, attributes=attributes, acked=False)
    msg.ack = lambda: setattr(msg, "acked", True)
    return msg


def offline_listener(results: list, reply_to: str = "me") -> ResultListener:
    """Return a result listener without a client, appending what it delivers to `results`."""
    return ResultListener(
        client=None, project_id="p", results_topic="results",
        on_result=lambda *args: results.append(args), ttl_s=86400, reply_to=reply_to,
    )  # fmt: skip
