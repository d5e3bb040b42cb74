"""Dead letters are not a dead end: list them with their reason, replay the fixable ones.

Works against Pub/Sub or, when PUBSUB_EMULATOR_HOST is set, the emulator. Listing leases the
messages for a moment and hands them back untouched; replaying publishes the original data and
attributes to the rides topic and acknowledges a dead letter only once that publish is confirmed,
so a replay interrupted half-way loses nothing (at worst a ride is predicted twice, which the
backend absorbs: the first result wins).
"""

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

# Attributes added on the way to the dead-letter topic, by the predictor or by Pub/Sub itself.
ADDED_ATTRIBUTES = {"reason", "error", "source_message_id", "truncated_from_bytes"}
POLICY_PREFIX = "CloudPubSubDeadLetter"
PULL_BATCH = 100
PULL_BUDGET_S = 10.0
# A pull with nothing to return waits until its deadline: keep that short, it means "no more".
EMPTY_PULL_WAIT_S = 2.0


@dataclass(frozen=True)
class DeadLetter:
    ack_id: str
    message_id: str
    published: str
    data: bytes
    attributes: dict[str, str]

    @property
    def reason(self) -> str:
        """Why it is here: the predictor's reason, or Pub/Sub giving up after its attempts."""
        if "reason" in self.attributes:
            return self.attributes["reason"]
        attempts = self.attributes.get(f"{POLICY_PREFIX}SourceDeliveryCount")
        return f"delivery-attempts-exhausted ({attempts})" if attempts else "unknown"

    @property
    def replayable(self) -> bool:
        """A truncated copy is not the message that failed: it cannot be replayed."""
        return "truncated_from_bytes" not in self.attributes

    def original_attributes(self) -> dict[str, str]:
        return {
            k: v
            for k, v in self.attributes.items()
            if k not in ADDED_ATTRIBUTES and not k.startswith(POLICY_PREFIX)
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "published": self.published,
            "reason": self.reason,
            "error": self.attributes.get("error", ""),
            "ride_id": self.attributes.get("ride_id"),
            "bytes": len(self.data),
            "replayable": self.replayable,
            "data": self.data[:200].decode("utf-8", errors="replace"),
        }


def subscriber_client(emulator_host: str | None = None) -> pubsub_v1.SubscriberClient:
    """A subscriber that can receive a dead letter of Pub/Sub's full 10 MB size."""
    host = emulator_host or os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        return pubsub_v1.SubscriberClient()
    # Against the emulator the client opens a plain channel with gRPC's 4 MB receive limit
    # (for Pub/Sub itself it lifts the limit), so a large dead letter would fail the pull.
    unlimited = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    channel = grpc.insecure_channel(host, options=unlimited)
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


def fetch(subscriber: Any, subscription: str, limit: int = 1000) -> list[DeadLetter]:
    """Pull and lease up to `limit` dead letters; `release` or `replay` must follow."""
    letters: dict[str, DeadLetter] = {}
    deadline = time.monotonic() + PULL_BUDGET_S
    while len(letters) < limit and time.monotonic() < deadline:
        try:
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": PULL_BATCH},
                timeout=EMPTY_PULL_WAIT_S,
            )
        except gexc.DeadlineExceeded:
            break
        if not response.received_messages:
            break
        for received in response.received_messages:
            m = received.message
            letters.setdefault(
                m.message_id,
                DeadLetter(
                    received.ack_id,
                    m.message_id,
                    m.publish_time.isoformat(),
                    bytes(m.data),
                    dict(m.attributes),
                ),
            )
    return list(letters.values())


def release(subscriber: Any, subscription: str, letters: Iterable[DeadLetter]) -> None:
    """Hand leased dead letters back to the subscription untouched."""
    ack_ids = [letter.ack_id for letter in letters]
    for i in range(0, len(ack_ids), PULL_BATCH):
        subscriber.modify_ack_deadline(
            request={
                "subscription": subscription,
                "ack_ids": ack_ids[i : i + PULL_BATCH],
                "ack_deadline_seconds": 0,
            },
            timeout=10,
        )


def replay(
    publisher: Any, subscriber: Any, subscription: str, topic: str, letters: Iterable[DeadLetter]
) -> dict[str, str]:
    """Publish each letter to `topic` as it first was, then ack it; return old id -> new id."""
    replayed: dict[str, str] = {}
    for letter in letters:
        if not letter.replayable:
            raise ValueError(f"dead letter {letter.message_id} was truncated: not replayable")
        future = publisher.publish(topic, letter.data, **letter.original_attributes())
        replayed[letter.message_id] = str(future.result(timeout=30))
        subscriber.acknowledge(
            request={"subscription": subscription, "ack_ids": [letter.ack_id]}, timeout=10
        )
    return replayed
