"""Dead letters are not a dead end: list them with their reason, replay the fixable ones.

Works against Pub/Sub or, when PUBSUB_EMULATOR_HOST is set, the emulator. A dead letter is acked
only once its replay is published, so an interrupted replay loses nothing; why it is safe for
long lists and replays: docs/reliability.md ("The dead-letter tool").
"""

import os
import threading
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
PULL_BUDGET_S = 60.0
# A pull with nothing to return waits until its deadline: keep that short, it means "no more".
EMPTY_PULL_WAIT_S = 1.0
# Pub/Sub may answer a pull with no message while more remain: only this many empty pulls in a
# row, each at least EMPTY_PULL_GAP_S apart, count as "no more".
EMPTY_PULLS = 3
EMPTY_PULL_GAP_S = 0.5
# What the tool holds stays leased: each held letter's deadline is set to LEASE_S every
# EXTEND_EVERY_S, for at most MAX_LEASE_S (then Pub/Sub hands the rest out again).
LEASE_S = 60
EXTEND_EVERY_S = 20.0
MAX_LEASE_S = 3600.0


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


def fetch(
    subscriber: Any,
    subscription: str,
    limit: int = 1000,
    leases: "Leases | None" = None,
    budget_s: float = PULL_BUDGET_S,
) -> list[DeadLetter]:
    """Pull and lease up to `limit` dead letters until the subscription is empty; release or replay.

    A message delivered twice (a lease that lapsed, or Pub/Sub's at-least-once) is kept once,
    with its latest ack id, the one that acks it.
    """
    letters: dict[str, DeadLetter] = {}
    deadline = time.monotonic() + budget_s
    empty = 0
    while len(letters) < limit and empty < EMPTY_PULLS and time.monotonic() < deadline:
        started = time.monotonic()
        try:
            batch = min(PULL_BATCH, limit - len(letters))
            request = {"subscription": subscription, "max_messages": batch}
            response = subscriber.pull(request=request, timeout=EMPTY_PULL_WAIT_S)
            received = list(response.received_messages)
        except gexc.DeadlineExceeded:
            received = []
        if not received:
            empty += 1
            time.sleep(max(0.0, started + EMPTY_PULL_GAP_S - time.monotonic()))
            continue
        empty = 0
        for message in received:
            m = message.message
            letter = DeadLetter(message.ack_id, m.message_id, m.publish_time.isoformat(),
                                bytes(m.data), dict(m.attributes))  # fmt: skip
            letters[m.message_id] = letter
            if leases is not None:
                leases.hold(letter)
    return list(letters.values())


class Leases:
    """Keep the dead letters this run holds leased, extending their deadline in the background."""

    def __init__(
        self,
        subscriber: Any,
        subscription: str,
        lease_s: int = LEASE_S,
        every_s: float = EXTEND_EVERY_S,
        max_s: float = MAX_LEASE_S,
    ) -> None:
        self._subscriber, self._subscription = subscriber, subscription
        self._lease_s, self._every_s, self._max_s = lease_s, every_s, max_s
        self._held: dict[str, str] = {}  # message id -> its latest ack id
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
        self.extended = 0  # deadline extensions sent, for tests and curious readers

    def __enter__(self) -> "Leases":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def hold(self, letter: DeadLetter) -> None:
        with self._lock:
            self._held[letter.message_id] = letter.ack_id

    def drop(self, letters: Iterable[DeadLetter]) -> None:
        """Stop extending these: acked or handed back."""
        with self._lock:
            for letter in letters:
                self._held.pop(letter.message_id, None)

    def _run(self) -> None:
        ends = time.monotonic() + self._max_s
        while not self._stop.wait(self._every_s) and time.monotonic() < ends:
            with self._lock:
                ack_ids = list(self._held.values())
            for i in range(0, len(ack_ids), PULL_BATCH):
                batch = ack_ids[i : i + PULL_BATCH]
                try:
                    _set_deadline(self._subscriber, self._subscription, batch, self._lease_s)
                except gexc.GoogleAPICallError:
                    continue  # the next round tries again; a lapsed lease means a redelivery
                self.extended += 1


def release(subscriber: Any, subscription: str, letters: Iterable[DeadLetter]) -> None:
    """Hand leased dead letters back to the subscription untouched."""
    ack_ids = [letter.ack_id for letter in letters]
    for i in range(0, len(ack_ids), PULL_BATCH):
        _set_deadline(subscriber, subscription, ack_ids[i : i + PULL_BATCH], 0)


def _set_deadline(subscriber: Any, subscription: str, ack_ids: list[str], seconds: int) -> None:
    request = {"subscription": subscription, "ack_ids": ack_ids, "ack_deadline_seconds": seconds}
    subscriber.modify_ack_deadline(request=request, timeout=10)


def _ack(subscriber: Any, subscription: str, letter: DeadLetter) -> None:
    request = {"subscription": subscription, "ack_ids": [letter.ack_id]}
    subscriber.acknowledge(request=request, timeout=10)


def replay(
    publisher: Any,
    subscriber: Any,
    subscription: str,
    topic: str,
    letters: Iterable[DeadLetter],
    replayed: dict[str, str] | None = None,
    leases: Leases | None = None,
    unacked: list[DeadLetter] | None = None,
) -> dict[str, str]:
    """Publish each letter to `topic` as it first was, then ack it; return old id -> new id.

    A letter whose message id is in `replayed` already (this run published it) is only acked:
    pass the same dict to every call of one run, so that no letter is published twice. Letters
    published whose ack failed are added to `unacked`: they come back, for `sweep`.
    """
    replayed = {} if replayed is None else replayed
    for letter in letters:
        if not letter.replayable:
            raise ValueError(f"dead letter {letter.message_id} was truncated: not replayable")
        if letter.message_id not in replayed:
            future = publisher.publish(topic, letter.data, **letter.original_attributes())
            replayed[letter.message_id] = str(future.result(timeout=30))
        try:
            _ack(subscriber, subscription, letter)
        except gexc.GoogleAPICallError:
            if unacked is not None:
                unacked.append(letter)
        if leases is not None:
            leases.drop([letter])
    return replayed


def sweep(
    subscriber: Any, subscription: str, replayed: dict[str, str], budget_s: float = 10.0
) -> int:
    """Ack the letters this run replayed that came back (an ack lost); hand back the others."""
    letters = fetch(subscriber, subscription, budget_s=budget_s)
    done = [letter for letter in letters if letter.message_id in replayed]
    release(subscriber, subscription, [x for x in letters if x.message_id not in replayed])
    for letter in done:
        _ack(subscriber, subscription, letter)
    return len(done)
