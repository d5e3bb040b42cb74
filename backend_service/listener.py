"""The result listener: this process's own results subscription, held open as one StreamingPull."""

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.pubsub_v1 import SubscriberClient

from ride_stream.messages import REPLY_TO, decode_result
from ride_stream.tracing import RIDE_ID as RIDE_ID_SPAN
from ride_stream.tracing import Tracing, messaging

from .pull_stream import (
    FATAL,
    FATAL_RETRY_S,
    REOPEN_WAIT_S,
    RESUBSCRIBE_BACKOFF_S,
    STREAM_ACK_DEADLINE_S,
    PullStream,
    Received,
    _code,
    stream_channels,
)

__all__ = [
    "REOPEN_WAIT_S",
    "STREAM_ACK_DEADLINE_S",
    "ResultListener",
    "make_client",
    "stream_channels",
]

log = logging.getLogger(__name__)

# Pub/Sub's minimum retention; results older than that are of no use to a waiting request.
RESULTS_RETENTION_S = 600


def make_client() -> SubscriberClient:
    """Create the subscriber client (admin calls, and its channel); call it after the fork."""
    return SubscriberClient()


class ResultListener(PullStream):
    """Own a results subscription filtered to this process and feed results to `on_result`.

    The stream (pull_stream.PullStream) acks each result once it is handed over. A lost
    subscription is made again, and `on_resubscribed` sends the waiting rides out again.
    Confirmations call `ensure_open` first: after a freeze it reopens the stream before they
    rely on it.
    """

    name = "results"

    def __init__(
        self,
        client: Any,
        project_id: str,
        results_topic: str,
        on_result: Callable[[str, float, str], object],
        ttl_s: int,
        reply_to: str | None = None,
        channels: Callable[[], grpc.Channel] | None = None,
        clock: Callable[[], float] = time.monotonic,
        tracing: Tracing | None = None,
    ) -> None:
        self.reply_to = reply_to or uuid.uuid4().hex[:16]
        super().__init__(client, self.reply_to, channels, clock)
        # Each result wakes its ride in a span of the ride's trace, which the result carries.
        self._tracing = tracing or Tracing("backend")
        # Called, on a thread of its own, once a lost subscription has been replaced: results
        # published meanwhile reached no subscription, so the rides waiting for them must go
        # out again.
        self.on_resubscribed: Callable[[], object] | None = None
        self._project_id = project_id
        self._topic = f"projects/{project_id}/topics/{results_topic}"
        self._prefix = f"{results_topic}-{self.reply_to}"
        self._on_result = on_result
        self._ttl_s = ttl_s
        self._generation = 0

    def start(self) -> None:
        """Create the subscription and start pulling; raise if Pub/Sub cannot be reached."""
        self._subscribe()
        self._thread.start()

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop pulling and delete the subscription."""
        self._close_stream(timeout_s)
        with self._lock:
            subscription = self.subscription
        if subscription is not None:
            self._delete(subscription, timeout_s)

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
        with self._lock:
            self.subscription = name
        log.info("listening for results", extra={"subscription": name, "reply_to": self.reply_to})

    def _lost_subscription(self, error: BaseException | None) -> None:
        """Pub/Sub lost the subscription (or the emulator restarted): make a new one."""
        log.error("results stream ended, resubscribing", extra={"error": repr(error)})
        if self._resubscribe() and self.on_resubscribed is not None:
            threading.Thread(
                target=self.on_resubscribed, name="after-resubscribe", daemon=True
            ).start()

    def _resubscribe(self) -> bool:
        """Make a new subscription, same filter: results published from then on reach it.

        Return False if the listener was closed first.
        """
        old = self.subscription
        wait_s = RESUBSCRIBE_BACKOFF_S[0]
        for attempt in range(10_000):
            if self._closing.wait(wait_s):
                return False
            try:
                self._subscribe()
            except gexc.GoogleAPICallError as err:
                if _code(err) in FATAL:
                    self._refused(f"results subscription refused: {type(err).__name__}: {err}")
                    wait_s = FATAL_RETRY_S
                    continue
                log.warning("resubscribe failed", extra={"error": repr(err), "attempt": attempt})
                wait_s = RESUBSCRIBE_BACKOFF_S[min(attempt + 1, len(RESUBSCRIBE_BACKOFF_S) - 1)]
                continue
            with self._lock:
                self._carried_acks = []  # ack ids of the old subscription mean nothing to the new
            if old is not None:
                self._delete(old, timeout_s=2.0)
            return True
        return False

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

    def _on_message(self, message: Received) -> None:
        # Ack in every case: a result that is not ours, or unreadable, will never become useful.
        message.ack()
        if message.attributes.get(REPLY_TO) != self.reply_to:
            return
        with self._tracing.consumer(message.attributes, f"{self._prefix} subscribe") as span:
            try:
                result = decode_result(message.data)
            except ValueError as err:
                log.warning("unreadable result message", extra={"error": repr(err)})
                return
            if span.is_recording():
                span.set_attributes(
                    messaging(self._prefix, "process", message.message_id)
                    | {RIDE_ID_SPAN: result.ride_id}
                )
            log.debug("result received", extra={"ride_id": result.ride_id})
            self._on_result(result.ride_id, result.duration_final, result.model_version)
