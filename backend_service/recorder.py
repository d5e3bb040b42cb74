"""The recorder: every result written to the ride store, from one subscription all instances share.

Each backend process's own results subscription wakes its waiting confirmations; a result for
a process that has died stays there, unread. The recorder subscription on the same topic has
no filter and is shared by every backend instance, so each result is delivered to one of
them, written to Firestore, and only then acked: a result whose recorder dies before the ack
comes again to another instance once its ack deadline passes. It is off the path that answers
a confirmation, so the official subscriber client (its lease handling, flow control and
callback threads) reads it.

Results are written in batches: the callbacks queue them, and one writer thread takes what has
gathered within BATCH_WAIT_S (up to MAX_OUTSTANDING) and records it in one BatchWrite, acking
each result its write recorded and returning the rest to Pub/Sub.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.cloud.pubsub_v1 import SubscriberClient
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler
from google.cloud.pubsub_v1.types import FlowControl

from ride_stream.messages import decode_result

from .ride_store import StoreUnavailable

log = logging.getLogger(__name__)

THREADS = 2  # the subscriber's callbacks, which only decode and queue
MAX_OUTSTANDING = 64  # results held by this process at once, the rest wait in Pub/Sub
# How long a result delivered to this process stays leased to it, at most, before Pub/Sub may
# hand it to another instance: the lease the stream asks for and each extension. Left at the
# official client's default the stream asks for 60 s, so the results a killed instance had been
# handed waited a minute, past the subscription's own 30 s ack deadline (docs/reliability.md).
LEASE_S = 10
# How long the writer gathers results after the first before it writes them: off the path that
# answers a confirmation, it delays only a lookup of the ride on another instance.
BATCH_WAIT_S = 0.05
RETRY_AFTER_S = 1.0  # a result the store refused goes back to Pub/Sub after this pause
RESTART_AFTER_S = 10.0  # after the stream stops on an error (IAM, a missing subscription)


class Recorder:
    """Read the shared recorder subscription and write each result with `record`."""

    def __init__(
        self,
        subscriber: Any,
        subscription: str,
        record: Callable[[Sequence[tuple[str, float, str]]], Sequence[object]],
        batch_wait_s: float = BATCH_WAIT_S,
    ) -> None:
        """`record` writes (ride_id, duration_final, model_version)s: for each, StoreUnavailable
        if it was not recorded, anything else if it was; or it raises StoreUnavailable."""
        self._subscriber = subscriber
        self.subscription = subscription
        self._record = record
        self._batch_wait_s = batch_wait_s
        self._queue: queue.SimpleQueue[tuple[Any, Any] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._future: Any = None
        self._closing = threading.Event()
        self.problem: str | None = None  # why the stream stopped, shown by /readyz

    def start(self) -> None:
        """Open the stream; its callbacks run on a few threads of their own."""
        with self._lock:
            if self._closing.is_set():
                return
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_forever, name="recorder-writer", daemon=True
                )
                self._writer.start()
            scheduler = ThreadScheduler(
                ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="recorder")
            )
            self._future = self._subscriber.subscribe(
                self.subscription,
                self._on_message,
                flow_control=FlowControl(
                    max_messages=MAX_OUTSTANDING, max_duration_per_lease_extension=LEASE_S
                ),
                scheduler=scheduler,
            )
            self._future.add_done_callback(self._stopped)

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop reading; results not yet acked go back to Pub/Sub for another instance."""
        self._closing.set()
        with self._lock:
            future = self._future
        if future is not None:
            future.cancel()
            try:
                future.result(timeout=timeout_s)
            except Exception:  # cancelled, or it had already failed: closing either way
                pass
        self._queue.put(None)
        if self._writer is not None:
            self._writer.join(timeout=timeout_s)

    def _on_message(self, message: Any) -> None:
        try:
            result = decode_result(message.data)
        except ValueError as err:  # never readable: recording it later will not help
            log.warning("unreadable result message", extra={"error": repr(err)})
            message.ack()
            return
        self._queue.put((result, message))

    def _write_forever(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = [first], False
            until = time.monotonic() + self._batch_wait_s
            while len(batch) < MAX_OUTSTANDING and (left := until - time.monotonic()) > 0:
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if item is None:
                    stop = True  # the messages gathered are nacked below: not written, not lost
                    break
                batch.append(item)
            if stop or self._closing.is_set():
                for _, message in batch:
                    message.nack()
                return
            self._write(batch)

    def _write(self, batch: list[tuple[Any, Any]]) -> None:
        """Record the batch; ack what was recorded, return the rest to Pub/Sub after a pause."""
        results = [(r.ride_id, r.duration_final, r.model_version) for r, _ in batch]
        try:
            outcomes: Sequence[object] = self._record(results)
        except StoreUnavailable as err:
            outcomes = [err] * len(batch)
        except Exception as err:  # a fault of ours: the writer thread must go on all the same
            log.exception("recording a batch failed")
            outcomes = [StoreUnavailable(f"record: {type(err).__name__}")] * len(batch)
        refused = []
        for (result, message), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, StoreUnavailable):
                refused.append(message)
                log.warning(
                    "result not recorded, back to Pub/Sub",
                    extra={"ride_id": result.ride_id, "error": outcome.reason},
                )
            else:
                message.ack()
        if refused:
            time.sleep(RETRY_AFTER_S)  # not at once: the store needs time to come back
            for message in refused:
                message.nack()

    def _stopped(self, future: Any) -> None:
        if self._closing.is_set():
            return
        error = future.exception() if not future.cancelled() else None
        self.problem = f"recorder stream stopped: {type(error).__name__}: {error}"
        log.error(
            f"recorder stream stopped; restarting in {RESTART_AFTER_S:g} s",
            extra={"subscription": self.subscription, "error": repr(error)},
        )
        timer = threading.Timer(RESTART_AFTER_S, self._restart)
        timer.daemon = True
        timer.start()

    def _restart(self) -> None:
        self.problem = None
        self.start()


def make_subscriber() -> Any:
    """The official subscriber client; call it in the worker, after gunicorn forks."""
    return SubscriberClient()
