"""Watch a drill from outside: every result on the stream, a backend's subscriptions, readiness."""

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests
from google.api_core import exceptions as gexc

from devstack.load import Attempt, Outcome
from devstack.pubsub import emulator_clients, subscriptions_of
from devstack.stack import Service, Stack

PROBE_S = 0.2


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


def tap(stack: Stack) -> ResultTap:
    s = stack.settings
    return ResultTap(stack.address, s.project, s.results_topic)


def urls(stack: Stack) -> list[str]:
    return [backend.url for backend in stack.backends]


def features(body: dict[str, Any]) -> dict[str, Any]:
    """A ride's body without its ride_id, as /estimate takes it."""
    return {k: v for k, v in body.items() if k != "ride_id"}


def reply_to(backend: Service) -> str:
    return str(requests.get(f"{backend.url}/readyz", timeout=10).json()["reply_to"])


def own_subscriptions(stack: Stack, backend: Service) -> list[str]:
    """The results subscriptions of `backend`'s worker, found by its reply_to."""
    mine, s = reply_to(backend), stack.settings
    return [n for n in subscriptions_of(stack.address, s.project, s.results_topic) if mine in n]


def open_at(outcome: Outcome, url: str, at: float) -> list[Attempt]:
    """The ride's confirmations that were open on `url` at `at`."""
    return [a for a in outcome.attempts if a.url == url and a.sent < at < a.sent + a.seconds]


def time_until(check: Callable[[], Any], budget_s: float) -> float | None:
    """Poll `check` until true; return the seconds it took, or None after `budget_s`."""
    started = time.monotonic()
    while time.monotonic() - started < budget_s:
        if check():
            return time.monotonic() - started
        time.sleep(PROBE_S)
    return None
