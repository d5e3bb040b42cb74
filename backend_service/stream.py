"""The two ends of the stream this process owns: the ride publisher and the result listener."""

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.types import StreamingPullRequest, StreamingPullResponse

from .batching import GroupCommitPublisher

log = logging.getLogger(__name__)

# Pub/Sub's minimum retention; results older than that are of no use to a waiting request.
RESULTS_RETENTION_S = 600
RESUBSCRIBE_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
STABLE_STREAM_S = 10.0  # a stream that stayed open this long ended normally, not in a failure
STREAMING_PULL_METHOD = "/google.pubsub.v1.Subscriber/StreamingPull"
STREAM_ACK_DEADLINE_S = 10
MAX_OUTSTANDING = 1000  # Pub/Sub's flow control: unacked results the stream may hold
MAX_ACKS_PER_REQUEST = 1000
HEARTBEAT_S = 30.0
# Plain protobuf classes: the stream is called on the client's channel, as batching.py does.
_PullRequest, _PullResponse = StreamingPullRequest.pb(), StreamingPullResponse.pb()


class StreamUnavailable(RuntimeError):
    """Pub/Sub did not confirm the publish in time."""


def make_clients(
    max_latency_s: float, timeout_s: float = 3.0
) -> tuple[GroupCommitPublisher, SubscriberClient]:
    """Create the gRPC clients; call it in the worker, after gunicorn forks."""
    # Each request waits for its own publish, so a batching delay would be added to every
    # confirmation: group commit batches what arrives while an RPC is in flight, no timer.
    # The generated clients, not google.cloud.pubsub_v1's: they own the channels (emulator or
    # Google's, with credentials) and the admin calls; both streams are called on the channels.
    publisher = GroupCommitPublisher(PublisherClient(), timeout_s, max_latency_s)
    return publisher, SubscriberClient()


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


class ReceivedResult:
    """One message from the results stream: what `_on_message` reads, and its ack."""

    __slots__ = ("ack_id", "attributes", "data", "_acks")

    def __init__(self, received: Any, acks: "queue.SimpleQueue[str | None]") -> None:
        self.ack_id: str = received.ack_id
        self.data: bytes = received.message.data
        self.attributes: Mapping[str, str] = received.message.attributes
        self._acks = acks

    def ack(self) -> None:
        self._acks.put(self.ack_id)


class ResultListener:
    """Own a results subscription filtered to this process and feed results to `on_result`.

    One thread holds a StreamingPull open on the subscription and acks each result on the
    same stream once it is handed over. The client library's subscriber would add a dozen
    threads (leases, dispatch, a callback pool) for results that take microseconds to handle.
    """

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
        self._call: Any = None  # the open StreamingPull, cancelled by close()
        self.subscription: str | None = None
        self._generation = 0
        self._thread = threading.Thread(target=self._run, name="results", daemon=True)

    def start(self) -> None:
        """Create the subscription and start pulling; raise if Pub/Sub cannot be reached."""
        self._subscribe()
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._call is not None and not self._closing.is_set()

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop pulling and delete the subscription."""
        self._closing.set()
        with self._lock:
            call, subscription = self._call, self.subscription
        if call is not None:
            call.cancel()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
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

    def _run(self) -> None:
        """Pull until closed; reopen an interrupted stream, resubscribe if the subscription went."""
        failures = 0
        while not self._closing.is_set():
            opened = time.monotonic()
            error: Exception | None = None
            try:
                self._pull(self.subscription or "")
            except Exception as err:  # gRPC's status, or a fault of ours: log it and go on
                error = err
            if self._closing.is_set():
                return
            if isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.NOT_FOUND:
                # Pub/Sub lost the subscription (or the emulator restarted): make a new one.
                log.error("results stream ended, resubscribing", extra={"error": repr(error)})
                self._resubscribe()
                continue
            # Pub/Sub closes streams from time to time; a stream that lasted is not a failure.
            failures = 1 if time.monotonic() - opened > STABLE_STREAM_S else failures + 1
            log.warning(
                "results stream interrupted, reopening",
                extra={"error": repr(error), "attempt": failures},
            )
            if self._closing.wait(RESUBSCRIBE_BACKOFF_S[min(failures - 1, 3)]):
                return

    def _pull(self, subscription: str) -> None:
        """Hold one StreamingPull open until it ends; hand over and ack every result."""
        acks: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        call = self._streaming_pull(_requests(subscription, acks))
        with self._lock:
            if self._closing.is_set():
                call.cancel()
            self._call = call
        try:
            for response in call:
                for received in response.received_messages:
                    self._on_message(ReceivedResult(received, acks))
        finally:
            acks.put(None)  # ends the request stream
            with self._lock:
                self._call = None

    def _streaming_pull(self, requests: Iterator[Any]) -> Any:
        rpc = self._client.transport.grpc_channel.stream_stream(
            STREAMING_PULL_METHOD,
            request_serializer=_PullRequest.SerializeToString,
            response_deserializer=_PullResponse.FromString,
        )
        return rpc(requests)

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


def _requests(subscription: str, acks: "queue.SimpleQueue[str | None]") -> Iterator[Any]:
    """The client side of a StreamingPull: open it, then send acks as they come, or heartbeats."""
    yield _PullRequest(
        subscription=subscription,
        stream_ack_deadline_seconds=STREAM_ACK_DEADLINE_S,
        max_outstanding_messages=MAX_OUTSTANDING,
    )
    while True:
        try:
            ack_id = acks.get(timeout=HEARTBEAT_S)
        except queue.Empty:
            yield _PullRequest()  # keeps an idle stream open, as the client library does
            continue
        ack_ids: list[str] = []
        while ack_id is not None and len(ack_ids) < MAX_ACKS_PER_REQUEST:
            ack_ids.append(ack_id)
            try:
                ack_id = acks.get_nowait()
            except queue.Empty:
                break
        if ack_ids:
            yield _PullRequest(ack_ids=ack_ids)
        if ack_id is None:
            return
