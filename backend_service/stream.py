"""The two ends of the stream this process owns: the ride publisher and the result listener."""

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from .batching import GroupCommitPublisher

log = logging.getLogger(__name__)

# Pub/Sub's minimum retention; results older than that are of no use to a waiting request.
RESULTS_RETENTION_S = 600
RESUBSCRIBE_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


class StreamUnavailable(RuntimeError):
    """Pub/Sub did not confirm the publish in time."""


def make_clients(
    max_latency_s: float, timeout_s: float = 3.0
) -> tuple[GroupCommitPublisher, pubsub_v1.SubscriberClient]:
    """Create the gRPC clients; call it in the worker, after gunicorn forks."""
    # Each request waits for its own publish, so a batching delay would be added to every
    # confirmation: group commit batches what arrives while an RPC is in flight, no timer.
    publisher = GroupCommitPublisher(pubsub_v1.PublisherClient(), timeout_s, max_latency_s)
    return publisher, pubsub_v1.SubscriberClient()


class RidePublisher:
    """Publish a ride and block until Pub/Sub confirms it, or fail within a bound."""

    def __init__(self, client: Any, project_id: str, topic: str, timeout_s: float) -> None:
        self._client = client
        self._topic = f"projects/{project_id}/topics/{topic}"
        self._timeout_s = timeout_s
        self.healthy = True

    def publish(self, data: bytes, ride_id: str, reply_to: str) -> str:
        """Return the message id; raise StreamUnavailable if it is not confirmed in time."""
        try:
            future = self._client.publish(
                self._topic, data, ride_id=ride_id, reply_to=reply_to, timeout=self._timeout_s
            )
            message_id = str(future.result(timeout=self._timeout_s))
        except Exception as err:  # gRPC, timeout and client errors all mean "not confirmed"
            self.healthy = False
            raise StreamUnavailable(f"{type(err).__name__}: {err}") from err
        self.healthy = True
        return message_id


class ResultListener:
    """Own a results subscription filtered to this process and feed results to `on_result`."""

    def __init__(
        self,
        client: Any,
        project_id: str,
        results_topic: str,
        on_result: Callable[[str, float, str], object],
        ttl_s: int,
        reply_to: str | None = None,
    ) -> None:
        self.reply_to = reply_to or uuid.uuid4().hex[:16]
        self._client = client
        self._project_id = project_id
        self._topic = f"projects/{project_id}/topics/{results_topic}"
        self._prefix = f"{results_topic}-{self.reply_to}"
        self._on_result = on_result
        self._ttl_s = ttl_s
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._future: Any = None
        self.subscription: str | None = None
        self._generation = 0
        self._supervisor = threading.Thread(target=self._supervise, name="results", daemon=True)

    def start(self) -> None:
        """Create the subscription and start pulling; raise if Pub/Sub cannot be reached."""
        self._subscribe()
        self._supervisor.start()

    @property
    def running(self) -> bool:
        future = self._future
        return future is not None and future.running() and not self._closing.is_set()

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop pulling and delete the subscription."""
        self._closing.set()
        with self._lock:
            future, subscription = self._future, self.subscription
        if future is not None:
            future.cancel()
            try:
                future.result(timeout=timeout_s)
            except Exception:  # a cancelled stream ends with an error by design
                pass
        if subscription is not None:
            self._delete(subscription, timeout_s)
        self._supervisor.join(timeout=timeout_s)

    def _subscribe(self) -> None:
        self._generation += 1
        name = self._client.subscription_path(
            self._project_id, f"{self._prefix}-{self._generation}"
        )
        self._client.create_subscription(
            request={
                "name": name,
                "topic": self._topic,
                # Pub/Sub applies the filter; the emulator does not, so _on_message checks too.
                "filter": f'attributes.reply_to = "{self.reply_to}"',
                "ack_deadline_seconds": 10,
                "message_retention_duration": {"seconds": RESULTS_RETENTION_S},
                "expiration_policy": {"ttl": {"seconds": self._ttl_s}},
            },
            timeout=10,
        )
        future = self._client.subscribe(name, callback=self._on_message)
        with self._lock:
            self._future, self.subscription = future, name
        log.info("listening for results", extra={"subscription": name, "reply_to": self.reply_to})

    def _supervise(self) -> None:
        """Resubscribe when the stream ends on its own, e.g. after Pub/Sub lost the subscription."""
        while not self._closing.is_set():
            future = self._future
            try:
                future.result()
            except Exception as err:  # the stream's terminal error, whatever it is
                if self._closing.is_set():
                    return
                log.error("results stream ended, resubscribing", extra={"error": repr(err)})
            self._resubscribe()

    def _resubscribe(self) -> None:
        old = self.subscription
        for attempt in range(10_000):
            if self._closing.wait(RESUBSCRIBE_BACKOFF_S[min(attempt, 3)]):
                return
            try:
                self._subscribe()
            except gexc.GoogleAPICallError as err:
                log.warning("resubscribe failed", extra={"error": repr(err), "attempt": attempt})
                continue
            if old is not None:
                self._delete(old, timeout_s=2.0)
            return

    def _delete(self, subscription: str, timeout_s: float) -> None:
        try:
            self._client.delete_subscription(
                request={"subscription": subscription}, timeout=timeout_s
            )
        except gexc.NotFound:
            return  # already gone: Pub/Sub lost it, or it expired
        except gexc.GoogleAPICallError as err:
            log.warning(
                "could not delete results subscription; its expiration policy will",
                extra={"subscription": subscription, "error": repr(err)},
            )
            return
        log.info("deleted results subscription", extra={"subscription": subscription})

    def _on_message(self, message: Any) -> None:
        # Ack in every case: a result that is not ours, or unreadable, will never become useful.
        message.ack()
        if message.attributes.get("reply_to") != self.reply_to:
            return
        try:
            result = json.loads(message.data)
            ride_id, duration = str(result["ride_id"]), float(result["duration_final"])
            version = str(result["model_version"])
        except (ValueError, KeyError, TypeError) as err:
            log.warning("unreadable result message", extra={"error": repr(err)})
            return
        self._on_result(ride_id, duration, version)
