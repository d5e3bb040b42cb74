"""The recorder: every result written to the ride store, from one subscription all instances share.

Each backend process's own results subscription wakes its waiting confirmations; a result for
a process that has died stays there, unread. The recorder subscription on the same topic has
no filter and is shared by every backend instance, so each result is delivered to one of
them, written to Firestore, and only then acked: a result whose recorder dies before the ack
comes again to another instance once its lease (LEASE_S) passes.

The subscription is read by a StreamingPull held by hand (pull_stream.PullStream, as the results
listener reads its own): one thread, acks and nacks sent on the stream itself, together. The
official subscriber cost a few tenths of a millisecond of CPU a result (its lease, dispatch and
callback threads, and an Acknowledge and a ModifyAckDeadline RPC of their own), which the
recorder's writes, a tenth of a millisecond a result, do not need.

Results are written in batches: the stream queues them, and one writer thread takes what has
gathered within BATCH_WAIT_S (up to MAX_OUTSTANDING) and records it in one BatchWrite, acking
each result its write recorded and returning the rest to Pub/Sub.
"""

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from ride_stream.messages import decode_result

from .pull_stream import STREAM_ACK_DEADLINE_S, PullStream, Received
from .ride_store import StoreUnavailable

log = logging.getLogger(__name__)

MAX_OUTSTANDING = 64  # results held by this process at once, the rest wait in Pub/Sub
# How long a result delivered to this process stays leased to it before Pub/Sub may hand it to
# another instance: the stream's ack deadline, which nothing extends. Short, so that the
# results a killed instance had been handed come to another within seconds (the subscription's
# own 30 s ack deadline applies to pulls, not to a stream). A batch is settled well within it;
# one held longer (a store slower than that) only comes again, and is appended once.
LEASE_S = STREAM_ACK_DEADLINE_S
# How long the writer gathers results after the first before it writes them: off the path that
# answers a confirmation, it delays only a lookup of the ride on another instance.
BATCH_WAIT_S = 0.05
RETRY_AFTER_S = 1.0  # a result the store refused goes back to Pub/Sub after this pause


class Recorder(PullStream):
    """Read the shared recorder subscription and write each result with `record`."""

    name = "recorder"

    def __init__(
        self,
        client: Any,
        subscription: str,
        record: Callable[[Sequence[tuple[str, float, str]]], Sequence[object]],
        batch_wait_s: float = BATCH_WAIT_S,
        channels: Callable[[], grpc.Channel] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`record` writes (ride_id, duration_final, model_version)s: for each, StoreUnavailable
        if it was not recorded, anything else if it was; or it raises StoreUnavailable."""
        # A client_id of this process's own: a stream it reopens gets the lost one's results.
        super().__init__(client, uuid.uuid4().hex[:16], channels, clock, MAX_OUTSTANDING)
        self.subscription = subscription
        self._record = record
        self._batch_wait_s = batch_wait_s
        self._queue: queue.SimpleQueue[tuple[Any, Received] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_forever, name="recorder-writer", daemon=True
        )

    def start(self) -> None:
        """Start the writer, and the stream on a thread of its own."""
        self._writer.start()
        self._thread.start()

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop reading; results not yet recorded go back to Pub/Sub for another instance."""
        self._closing.set()
        self._queue.put(None)
        if self._writer.is_alive():
            self._writer.join(timeout=timeout_s)  # its nacks leave in the stream's half-close
        self._close_stream(timeout_s)

    def _woke(self, waited_s: float) -> None:
        """After a freeze, reopen the stream at once: no request waits on it to do so."""
        super()._woke(waited_s)
        if self._suspect:
            threading.Thread(
                target=self.ensure_open, args=(0.0,), name="recorder-reopen", daemon=True
            ).start()

    def _on_message(self, message: Received) -> None:
        if self._closing.is_set():
            message.nack()  # the writer has stopped: back to Pub/Sub, for another instance
            return
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

    def _write(self, batch: list[tuple[Any, Received]]) -> None:
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
