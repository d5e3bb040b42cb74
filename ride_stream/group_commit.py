"""Publish with group commit: each message rides in the next Publish RPC to leave.

Both services wait for each publish before they answer, so the Pub/Sub client's own batching,
which waits `max_latency` and starts two threads per batch, would add its delay and CPU to every
request. Group commit needs no timer: while an RPC is in flight, newly published messages
queue up and leave together in the next RPC to start, so batches grow with the load. Another
RPC starts beside those in flight only once the youngest of them has been out `stagger_s`: a
fast Pub/Sub (the emulator) keeps one RPC out at a time and gathers the most messages into
each, a slow one (tens of milliseconds a round trip) gets up to `max_in_flight` staggered RPCs,
so no message waits a whole round trip behind another RPC. An idle publish goes out at once,
sent by the thread that publishes it (handing it to a sender thread costs a thread wake-up
each way). docs/benchmarks.md has the measured difference.

Failures are handled as the official client handles them: the codes its Publish retries are
retried with exponential back-off, within each message's deadline; a batch the service refuses
as INVALID_ARGUMENT is split, so the one bad message fails alone.
"""

import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import grpc
from google.pubsub_v1 import PublishRequest, PublishResponse, PubsubMessage

# Pub/Sub's limits: 1,000 messages and 10 MB a Publish call; a message of 10 MB with at most 100
# attributes, keys of 256 bytes and values of 1,024 bytes.
# https://cloud.google.com/pubsub/quotas#resource_limits
MAX_MESSAGES = 1000
MAX_BYTES = 9 * 1024 * 1024
MAX_MESSAGE_BYTES = 10 * 1000 * 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
# What google-cloud-pubsub's Publish retries by default (default_retry of `publish` in
# google/pubsub_v1/services/publisher/transports/base.py); it stops on every other code.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
    }
)
# The official client starts at 0.1 s and multiplies by 4 under a 600 s deadline; ours is the
# caller's few seconds, so a shorter start and a smaller step give it several attempts.
BACKOFF_INITIAL_S = 0.05
BACKOFF_MAX_S = 1.0
# Several RPCs in flight: with tens of milliseconds a round trip, one at a time would make each
# confirmation wait for the RPC before its own. Each RPC costs CPU of its own, so not many, and
# a new one starts only when the youngest in flight has been out STAGGER_S: longer than a round
# trip to a fast Pub/Sub, a small share of one to a distant region.
MAX_IN_FLIGHT = 8
STAGGER_S = 0.003
# Messages waiting for an RPC; past it a publish fails at once (the caller answers 503 or asks
# for a redelivery) instead of queueing behind an outage.
MAX_QUEUED = 2000
# The RPC called with plain protobuf messages: the generated client's proto-plus wrappers and
# interceptors cost a large share of the worker's Python time at full load.
PUBLISH_METHOD = "/google.pubsub.v1.Publisher/Publish"
_Request, _Message, _Response = PublishRequest.pb(), PubsubMessage.pb(), PublishResponse.pb()


class PublishRefused(ValueError):
    """Pub/Sub would refuse this message: too big, or too many or too long attributes."""


class PublisherBusy(RuntimeError):
    """Too many messages already wait for an RPC."""


class NotSentInTime(TimeoutError):
    """The message's deadline passed before an RPC could confirm it."""


@dataclass(slots=True)
class _Item:
    topic: str
    message: Any  # a protobuf PubsubMessage
    future: Future
    deadline: float
    size: int


def message_size(data: bytes, attributes: Mapping[str, str]) -> int:
    """Return the message's size as Pub/Sub counts it; raise PublishRefused past its limits."""
    if not data and not attributes:
        raise PublishRefused("a message needs data or at least one attribute")
    if len(attributes) > MAX_ATTRIBUTES:
        raise PublishRefused(f"{len(attributes)} attributes, at most {MAX_ATTRIBUTES}")
    size = len(data)
    for key, value in attributes.items():
        key_bytes, value_bytes = len(key.encode()), len(value.encode())
        if key_bytes > MAX_ATTRIBUTE_KEY_BYTES or value_bytes > MAX_ATTRIBUTE_VALUE_BYTES:
            raise PublishRefused(f"attribute {key[:64]!r} is over Pub/Sub's size limits")
        size += key_bytes + value_bytes
    if size > MAX_MESSAGE_BYTES:
        raise PublishRefused(f"message of {size} bytes, at most {MAX_MESSAGE_BYTES}")
    return size


def cut_utf8(text: str, limit: int) -> str:
    """Return `text` cut to at most `limit` bytes of UTF-8, never inside a character."""
    encoded = text.encode("utf-8", "replace")  # a lone surrogate cannot be sent either
    return encoded[:limit].decode("utf-8", "ignore")


class GroupCommitPublisher:
    """A `publish(topic, data, timeout=None, **attrs) -> Future` that sends messages together."""

    def __init__(
        self,
        client: Any,
        timeout_s: float,
        linger_s: float = 0.0,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_queued: int = MAX_QUEUED,
        backoff_s: float = BACKOFF_INITIAL_S,
        stagger_s: float = STAGGER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client  # owns the channel, with its credentials
        self._rpc = client.transport.grpc_channel.unary_unary(
            PUBLISH_METHOD,
            request_serializer=_Request.SerializeToString,
            response_deserializer=_Response.FromString,
        )
        self._timeout_s = timeout_s
        self._linger_s = linger_s
        self._max_in_flight = max_in_flight
        self._max_queued = max_queued
        self._backoff_s = backoff_s
        self._stagger_s = stagger_s
        self._clock = clock
        # Under the lock: the queue, the RPCs in flight, when the youngest started. Sender
        # threads wait on `_ready` for something to send and leave to start an RPC.
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: deque[_Item] = deque()
        self._in_flight = 0
        self._last_start = 0.0
        self._waking = False  # a sender was woken and has not looked at the queue yet
        for i in range(max_in_flight):
            threading.Thread(target=self._send_forever, name=f"publisher-{i}", daemon=True).start()

    def publish(
        self, topic: str, data: bytes, timeout: float | None = None, **attrs: str
    ) -> Future:
        """Send or queue one message; the future resolves to its message id or the error.

        It fails at once when the message is over Pub/Sub's limits or the queue is full. With
        nothing queued and an RPC free to start, the message leaves in an RPC of its own, sent
        from this thread, and the future is done when this returns. Otherwise a sender thread
        sends it with everything else queued by then. Either way it is retried until `timeout`
        (the publisher's `timeout_s` when None) has passed.
        """
        future: Future = Future()
        try:
            size = message_size(data, attrs)
        except PublishRefused as err:
            future.set_exception(err)
            return future
        now = self._clock()
        deadline = now + (self._timeout_s if timeout is None else timeout)
        item = _Item(topic, _Message(data=data, attributes=attrs), future, deadline, size)
        with self._lock:
            startable = self._wait_to_start(now) == 0.0
            direct = startable and not self._queue
            if direct:
                self._start(now)
            elif len(self._queue) >= self._max_queued:
                future.set_exception(PublisherBusy(f"{self._max_queued} messages wait to be sent"))
                return future
            else:
                # Wake a sender only when it has something new to do: start an RPC now, or
                # time the stagger for a queue that was empty. Later messages join that.
                if startable or not self._queue:
                    self._wake_sender()
                self._queue.append(item)
        if direct:
            try:
                self._send(topic, [item])
            finally:
                self._finish()
        return future

    def _wait_to_start(self, now: float) -> float | None:
        """Seconds until another RPC may start: 0 now, None until one in flight ends."""
        if self._in_flight == 0:
            return 0.0
        if self._in_flight >= self._max_in_flight:
            return None
        return max(0.0, self._last_start + self._stagger_s - now)

    def _start(self, now: float) -> None:
        self._in_flight += 1
        self._last_start = now

    def _finish(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._queue:
                self._wake_sender()

    def _wake_sender(self) -> None:
        """Wake one sender thread, unless one woken already has yet to run (under the lock)."""
        if not self._waking:
            self._waking = True
            self._ready.notify()

    def _send_forever(self) -> None:
        while True:
            with self._lock:
                self._waking = False  # this sender looks at the queue now
                while (wait := self._wait_to_start(self._clock())) != 0.0 or not self._queue:
                    self._ready.wait(wait if self._queue else None)
                    self._waking = False
                self._start(self._clock())
            try:
                if self._linger_s:
                    time.sleep(self._linger_s)  # what queues meanwhile joins this RPC
                self._send_round()
            finally:
                self._finish()

    def _send_round(self) -> None:
        """Send what is queued, up to one RPC's limits; the rest waits for the next round."""
        items: list[_Item] = []
        size = 0
        with self._lock:
            while self._queue and len(items) < MAX_MESSAGES:
                if items and size + self._queue[0].size > MAX_BYTES:
                    break
                item = self._queue.popleft()
                items.append(item)
                size += item.size
        by_topic: dict[str, list[_Item]] = defaultdict(list)
        for item in items:
            by_topic[item.topic].append(item)
        for topic, batch in by_topic.items():
            self._send(topic, batch)

    def _send(self, topic: str, batch: list[_Item]) -> None:
        """Publish `batch`, retrying what the official client retries until its deadlines."""
        for attempt in range(1000):  # bounded by the deadlines long before
            now = self._clock()
            expired = [item for item in batch if item.deadline <= now]
            _fail(expired, NotSentInTime("not confirmed by Pub/Sub within its deadline"))
            batch = [item for item in batch if item.deadline > now]
            if not batch:
                return
            latest = max(item.deadline for item in batch)
            try:
                response = self._rpc(
                    _Request(topic=topic, messages=[item.message for item in batch]),
                    timeout=latest - now,
                    # The routing header the generated client adds to every Publish.
                    metadata=[("x-goog-request-params", f"topic={topic}")],
                )
            except grpc.RpcError as err:
                code = err.code() if isinstance(err, grpc.Call) else None
                if code in RETRYABLE:
                    delay = min(BACKOFF_MAX_S, self._backoff_s * 2**attempt)
                    # Jittered, so instances that lost the same RPC do not retry in step.
                    time.sleep(min(random.uniform(delay / 2, delay), max(0.0, latest - now)))
                    continue
                if code == grpc.StatusCode.INVALID_ARGUMENT and len(batch) > 1:
                    # One message the service refuses fails alone, not its whole batch.
                    half = len(batch) // 2
                    self._send(topic, batch[:half])
                    self._send(topic, batch[half:])
                    return
                _fail(batch, err)
                return
            except Exception as err:  # a client fault fails every message in the RPC
                _fail(batch, err)
                return
            _resolve(batch, list(response.message_ids))
            return


def _fail(items: list[_Item], error: BaseException) -> None:
    for item in items:
        item.future.set_exception(error)


def _resolve(batch: list[_Item], ids: list[str]) -> None:
    if len(ids) != len(batch):
        _fail(batch, RuntimeError(f"Publish returned {len(ids)} ids for {len(batch)} messages"))
        return
    for item, message_id in zip(batch, ids, strict=True):
        item.future.set_result(message_id)
