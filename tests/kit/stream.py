"""Publish rides and read results on the emulator, as another producer and consumer would."""

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from devstack.pubsub import Topology, emulator_clients

Pull = Callable[[int, float], list[Any]]


@contextmanager
def results_reader(
    address: str, topology: Topology, topic_name: str | None = None
) -> Iterator[Pull]:
    """Subscribe to the results topic (or `topic_name`); yield pull(want, timeout_s) -> messages;
    unsubscribe."""
    name = topology.subscription_path(f"reader-{uuid.uuid4().hex[:8]}")
    topic = topology.topic_path(topic_name or topology.results_topic)
    with emulator_clients(address) as (_, subscriber):
        subscriber.create_subscription(request={"name": name, "topic": topic}, timeout=10)

        def pull(want: int, timeout_s: float = 30.0) -> list[Any]:
            return pull_messages(subscriber, name, want, timeout_s)

        try:
            yield pull
        finally:
            subscriber.delete_subscription(request={"subscription": name}, timeout=10)


def pull_messages(subscriber: Any, subscription: str, want: int, timeout_s: float) -> list[Any]:
    """Pull and ack until `want` messages arrived or the time is up; return the messages."""
    received: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(received) < want and time.monotonic() < deadline:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 50}, timeout=5
        )
        ack_ids = [m.ack_id for m in response.received_messages]
        if ack_ids:
            subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids})
        received += [m.message for m in response.received_messages]
    return received


def pull_all(address: str, subscription: str, want: int, timeout_s: float = 30) -> list[Any]:
    """Pull and ack `want` messages from `subscription` on the emulator at `address`."""
    with emulator_clients(address) as (_, subscriber):
        return pull_messages(subscriber, subscription, want, timeout_s)


def publish(address: str, topology: Topology, data: bytes, **attributes: str) -> str:
    """Publish `data` to the rides topic, as `gcloud pubsub topics publish` would."""
    with emulator_clients(address) as (publisher, _):
        topic = topology.topic_path(topology.rides_topic)
        return str(publisher.publish(topic, data, **attributes).result(10))


def answer(stack: Any, data: bytes, **attributes: str) -> Any:
    """Publish one ride to `stack` (a devstack Stack) as another producer would; return the one
    result message for it."""
    topology = stack.settings.topology
    with results_reader(stack.address, topology) as pull:
        publish(stack.address, topology, data, **attributes)
        received = pull(1, 30.0)
    assert len(received) == 1, stack.predictor.process.log_tail()
    return received[0]
