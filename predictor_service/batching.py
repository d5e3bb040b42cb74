"""Publish with group commit: each message rides in the next Publish RPC to leave.

The Pub/Sub client's own batching waits `max_latency` and starts two threads per batch; with
every request waiting for its own publish that costs about 250 us of CPU and 3 ms per request
here. Group commit needs no timer: while one RPC is in flight, newly published messages queue
up and leave together in the next one, so batches grow with the load and an idle publish goes
out at once, sent by the thread that publishes it (handing it to the sender thread and waking
the caller again cost about 200 us of CPU and half a millisecond a publish).
"""

import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from typing import Any

from google.pubsub_v1 import PublishRequest, PublishResponse, PubsubMessage

# Pub/Sub accepts up to 1,000 messages and 10 MB in one Publish call.
# https://cloud.google.com/pubsub/quotas#resource_limits
MAX_MESSAGES = 1000
MAX_BYTES = 9 * 1024 * 1024
# One sender thread: what arrives while an RPC is in flight forms the next batch. A gRPC call
# costs about 350 us of CPU here, so fewer, fuller RPCs leave more CPU for requests.
SENDERS = 1
# The RPC called with plain protobuf messages: the generated client's proto-plus wrappers and
# interceptors cost about a fifth of the worker's Python time at full load.
PUBLISH_METHOD = "/google.pubsub.v1.Publisher/Publish"
_Request, _Message, _Response = PublishRequest.pb(), PubsubMessage.pb(), PublishResponse.pb()

_Item = tuple[str, Any, Future]  # topic, a protobuf PubsubMessage, its future


class GroupCommitPublisher:
    """A `publish(topic, data, **attrs) -> Future` that sends pending messages together."""

    def __init__(self, client: Any, timeout_s: float, linger_s: float = 0.0) -> None:
        self._client = client  # owns the channel, with its credentials
        self._rpc = client.transport.grpc_channel.unary_unary(
            PUBLISH_METHOD,
            request_serializer=_Request.SerializeToString,
            response_deserializer=_Response.FromString,
        )
        self._timeout_s = timeout_s
        self._linger_s = linger_s
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._in_flight = 0  # Publish RPCs being sent, by callers or the sender thread
        self._senders = [
            threading.Thread(target=self._send_forever, name=f"publisher-{i}", daemon=True)
            for i in range(SENDERS)
        ]
        for sender in self._senders:
            sender.start()

    def publish(self, topic: str, data: bytes, timeout: object = None, **attrs: str) -> Future:
        """Send or queue one message; the future resolves to its message id or the RPC's error.

        With nothing in flight or queued, the message leaves at once in an RPC of its own, sent
        from this thread, and the future is done when this returns. Otherwise the sender thread
        waits `linger_s`, then sends it with everything else queued by then.
        """
        del timeout  # the RPC is bounded by timeout_s; callers bound their own wait
        future: Future = Future()
        item = (topic, _Message(data=data, attributes=attrs), future)
        with self._lock:
            direct = self._in_flight == 0 and self._queue.empty()
            if direct:
                self._in_flight += 1
        if not direct:
            self._queue.put(item)
            return future
        try:
            self._send(topic, [item])
        finally:
            with self._lock:
                self._in_flight -= 1
        return future

    def _send_forever(self) -> None:
        carried: _Item | None = None  # the message that did not fit in the previous RPC
        while True:
            items = [carried or self._queue.get()]
            carried = None
            with self._lock:
                self._in_flight += 1
            try:
                carried = self._send_round(items)
            finally:
                with self._lock:
                    self._in_flight -= 1

    def _send_round(self, items: list[_Item]) -> _Item | None:
        """Send `items` and what else is queued; return the message left for the next round."""
        if self._linger_s:
            time.sleep(self._linger_s)
        carried = None
        size = len(items[0][1].data)
        while len(items) < MAX_MESSAGES:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if size + len(item[1].data) > MAX_BYTES:
                carried = item
                break
            items.append(item)
            size += len(item[1].data)
        by_topic: dict[str, list[_Item]] = defaultdict(list)
        for item in items:
            by_topic[item[0]].append(item)
        for topic, batch in by_topic.items():
            self._send(topic, batch)
        return carried

    def _send(self, topic: str, batch: list[_Item]) -> None:
        try:
            request = _Request(topic=topic, messages=[message for _, message, _ in batch])
            # No retries here: a failure goes back to the caller, whose request Pub/Sub
            # redelivers. The routing header is the one the generated client would add.
            response = self._rpc(
                request,
                timeout=self._timeout_s,
                metadata=[("x-goog-request-params", f"topic={topic}")],
            )
        except Exception as err:  # gRPC and client errors alike fail every message in the RPC
            for _, _, future in batch:
                future.set_exception(err)
            return
        ids = list(response.message_ids)
        if len(ids) != len(batch):
            error = RuntimeError(f"Publish returned {len(ids)} ids for {len(batch)} messages")
            for _, _, future in batch:
                future.set_exception(error)
            return
        for (_, _, future), message_id in zip(batch, ids, strict=True):
            future.set_result(message_id)
