"""The stream on the emulator: topics and subscriptions as deploy/setup.sh makes them in GCP."""

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import pubsub_v1

# As deploy/pubsub.sh makes it: a result whose recorder died comes again to another after this.
RECORDER_ACK_DEADLINE_S = 30


@dataclass(frozen=True)
class Topology:
    project: str
    push_endpoint: str
    rides_topic: str = "ride-data-push"
    results_topic: str = "ride-duration-pull"
    dead_letter_topic: str = "ride-data-dead-letter"
    push_subscription: str = "ride-data-push-sub"
    dead_letter_subscription: str = "ride-data-dead-letter-sub"
    # The results subscription the backends share to record every result (backend recorder.py);
    # None: no shared ride store, no recorder.
    recorder_subscription: str | None = None
    # A slow prediction past this is redelivered.
    ack_deadline_s: int = 10
    # Pub/Sub's minimum; what fails this often goes to the dead-letter topic.
    max_delivery_attempts: int = 5

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project}/subscriptions/{subscription}"


@contextmanager
def emulator_clients(
    address: str,
) -> Iterator[tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]]:
    """Yield clients bound to the emulator at `address` (they read PUBSUB_EMULATOR_HOST)."""
    saved = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = address
    try:
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    finally:
        if saved is None:
            del os.environ["PUBSUB_EMULATOR_HOST"]
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = saved
    try:
        yield publisher, subscriber
    finally:
        publisher.stop()
        subscriber.close()


def provision(topology: Topology, address: str) -> None:
    """Create every topic and subscription; what exists already is left as it is."""
    t = topology
    with emulator_clients(address) as (publisher, subscriber):
        for topic in (t.rides_topic, t.results_topic, t.dead_letter_topic):
            _ignore_existing(publisher.create_topic, request={"name": t.topic_path(topic)})

        def subscribe(name: str, topic: str, **config: Any) -> None:
            request = {"name": t.subscription_path(name), "topic": t.topic_path(topic)} | config
            _ignore_existing(subscriber.create_subscription, request=request)

        # No retry_policy: with one, the emulator stops pushing a message after its third failed
        # push (at about 0, 1 and 4 s) and never delivers or dead-letters it (measured;
        # docs/reliability.md). Without one it retries about every second. deploy/pubsub.sh sets
        # the back-off in GCP.
        subscribe(
            t.push_subscription, t.rides_topic,
            push_config={"push_endpoint": t.push_endpoint}, ack_deadline_seconds=t.ack_deadline_s,
            dead_letter_policy={"dead_letter_topic": t.topic_path(t.dead_letter_topic),
                                "max_delivery_attempts": t.max_delivery_attempts},
        )  # fmt: skip
        if t.recorder_subscription:
            subscribe(t.recorder_subscription, t.results_topic,
                      ack_deadline_seconds=RECORDER_ACK_DEADLINE_S)  # fmt: skip
        # Keep dead letters for Pub/Sub's maximum, a week, for inspection and replay.
        subscribe(
            t.dead_letter_subscription, t.dead_letter_topic, ack_deadline_seconds=60,
            message_retention_duration={"seconds": 7 * 24 * 3600},
        )  # fmt: skip


def subscriptions_of(address: str, project: str, topic: str) -> list[str]:
    """Names of the subscriptions attached to `topic`."""
    with emulator_clients(address) as (publisher, _):
        return sorted(
            publisher.list_topic_subscriptions(
                request={"topic": f"projects/{project}/topics/{topic}"}, timeout=10
            )
        )


def push_envelope(
    data: bytes,
    attributes: dict[str, str] | None = None,
    *,
    message_id: str = "1",
    subscription: str = "projects/test-project/subscriptions/test",
) -> bytes:
    """Wrap `data` as a push subscription delivers a message to its endpoint."""
    message = {
        "data": base64.b64encode(data).decode(),
        "attributes": attributes or {},
        "messageId": message_id,
    }
    return json.dumps({"message": message, "subscription": subscription}).encode()


def _ignore_existing(create, **kwargs) -> None:  # type: ignore[no-untyped-def]
    try:
        create(**kwargs, timeout=10)
    except AlreadyExists:
        pass
