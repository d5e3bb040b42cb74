"""Watch a drill from outside: every result on the stream, and each process's resources."""

import json
import threading
import time
import uuid
from collections import Counter

from google.api_core import exceptions as gexc

from devstack.pubsub import emulator_clients


class ResultTap:
    """Count every result message on the results topic through a subscription of its own."""

    def __init__(self, address: str, project: str, results_topic: str) -> None:
        self.counts: Counter[str] = Counter()
        self.first_seen: dict[str, float] = {}  # ride_id: time.monotonic() of its first result
        self._address = address
        self._topic = f"projects/{project}/topics/{results_topic}"
        self._name = f"projects/{project}/subscriptions/tap-{uuid.uuid4().hex[:10]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tap", daemon=True)

    def __enter__(self) -> "ResultTap":
        # Subscribe before the drill starts: a result published earlier would not be counted.
        with emulator_clients(self._address) as (_, subscriber):
            self._create(subscriber)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    @property
    def duplicates(self) -> int:
        """Result messages beyond the first per ride: redeliveries the backend must absorb."""
        return sum(n - 1 for n in self.counts.values() if n > 1)

    def _run(self) -> None:
        with emulator_clients(self._address) as (_, subscriber):
            while not self._stop.is_set():
                try:
                    self._pull(subscriber)
                except gexc.NotFound:  # the emulator restarted and lost it: subscribe again
                    self._create(subscriber)
                except gexc.GoogleAPICallError:  # the emulator is down: wait for it
                    self._stop.wait(0.5)
            try:
                subscriber.delete_subscription(request={"subscription": self._name}, timeout=5)
            except gexc.GoogleAPICallError:
                pass

    def _create(self, subscriber) -> None:  # type: ignore[no-untyped-def]
        try:
            subscriber.create_subscription(
                request={"name": self._name, "topic": self._topic}, timeout=5
            )
        except gexc.AlreadyExists:
            pass
        except gexc.GoogleAPICallError:
            self._stop.wait(0.5)

    def _pull(self, subscriber) -> None:  # type: ignore[no-untyped-def]
        response = subscriber.pull(
            request={"subscription": self._name, "max_messages": 200}, timeout=2
        )
        messages = response.received_messages
        if not messages:
            self._stop.wait(0.2)
            return
        subscriber.acknowledge(
            request={"subscription": self._name, "ack_ids": [m.ack_id for m in messages]},
            timeout=5,
        )
        for m in messages:
            try:
                ride_id = str(json.loads(m.message.data)["ride_id"])
                self.counts[ride_id] += 1
                self.first_seen.setdefault(ride_id, time.monotonic())
            except (ValueError, KeyError, TypeError):
                self.counts["<unreadable>"] += 1


def expiration_ttl_s(address: str, subscription: str) -> float | None:
    """The subscription's expiration TTL in seconds, or None if it has none or is gone."""
    with emulator_clients(address) as (_, subscriber):
        try:
            sub = subscriber.get_subscription(request={"subscription": subscription}, timeout=10)
        except gexc.NotFound:
            return None
    ttl = sub.expiration_policy.ttl
    return ttl.total_seconds() if ttl else None
