"""The result listener: this process's own results subscription, held open as one StreamingPull."""

import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.pubsub_v1 import SubscriberClient
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport
from google.pubsub_v1.types import StreamingPullRequest, StreamingPullResponse

from ride_stream.messages import REPLY_TO, decode_result
from ride_stream.tracing import RIDE_ID as RIDE_ID_SPAN
from ride_stream.tracing import Tracing, messaging

log = logging.getLogger(__name__)

# Pub/Sub's minimum retention; results older than that are of no use to a waiting request.
RESULTS_RETENTION_S = 600
RESUBSCRIBE_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
STABLE_STREAM_S = 10.0  # a stream that stayed open this long ended normally, not in a failure
# Codes that retrying at once will not change, as the official client's streaming pull stops on
# them (_TERMINATING_STREAM_ERRORS in google/cloud/pubsub_v1/subscriber/_protocol/
# streaming_pull_manager.py), plus FAILED_PRECONDITION, with which Pub/Sub refuses a filter.
# NOT_FOUND is handled apart: the subscription is made again.
FATAL = frozenset(
    {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
# After a fatal code the listener still tries again, slowly, so that a fixed IAM grant (or
# filter) recovers without a restart; /readyz fails with the reason meanwhile.
FATAL_RETRY_S = 10.0
# Without pubsub.subscriptions.get, a stream still open this long after it opened is taken as
# accepted: Pub/Sub refuses a stream within a round trip.
ACCEPT_GRACE_S = 1.0
STREAMING_PULL_METHOD = "/google.pubsub.v1.Subscriber/StreamingPull"
STREAM_ACK_DEADLINE_S = 10
MAX_OUTSTANDING = 1000  # Pub/Sub's flow control: unacked results the stream may hold
MAX_ACKS_PER_REQUEST = 1000
HEARTBEAT_S = 30.0
# A process that went this long without a sign of the stream's life (a heartbeat is due every
# HEARTBEAT_S) was frozen: Cloud Run gives CPU only during requests unless told otherwise.
FROZEN_AFTER_S = HEARTBEAT_S + 5.0
REOPEN_WAIT_S = 3.0  # how long a confirmation waits for a stream reopened after a freeze
HALF_CLOSE_S = 0.2  # for a stream's half-close to leave before the stream is cancelled
OPEN_TIMEOUT_S = 5.0  # to connect a stream's channel before the attempt counts as failed
PUBSUB_TARGET = "pubsub.googleapis.com:443"
# Plain protobuf classes, as ride_stream.group_commit calls Publish: proto-plus costs CPU.
_PullRequest, _PullResponse = StreamingPullRequest.pb(), StreamingPullResponse.pb()


def stream_channels(emulator_host: str = "") -> Callable[[], grpc.Channel]:
    """Return a factory of channels for the results stream, each on a connection of its own."""
    # Its own connection (a local subchannel pool), not the publisher's: after a freeze the
    # listener drops it for a new one, since a connection lost silently still looks READY.
    options: list[tuple[str, Any]] = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_receive_message_length", -1),
    ]
    if emulator_host:
        # No keepalive: the emulator (a grpc-java server, which by default allows one ping in
        # 5 minutes) answers pings with GOAWAY too_many_pings, which closes the stream.
        return lambda: grpc.insecure_channel(emulator_host, options=options)
    # Keepalive as the Pub/Sub client library sets it (30 s), with a short timeout, so that a
    # connection lost while the process ran fails the stream within seconds.
    options += [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 5_000)]
    return lambda: SubscriberGrpcTransport.create_channel(PUBSUB_TARGET, options=options)


def make_client() -> SubscriberClient:
    """Create the subscriber client (admin calls, and its channel); call it after the fork."""
    return SubscriberClient()


class ReceivedResult:
    """One message from the results stream: what `_on_message` reads, and its ack."""

    __slots__ = ("ack_id", "attributes", "data", "message_id", "_acks")

    def __init__(self, received: Any, acks: "queue.SimpleQueue[str | None]") -> None:
        self.ack_id: str = received.ack_id
        self.message_id: str = received.message.message_id
        self.data: bytes = received.message.data
        self.attributes: Mapping[str, str] = received.message.attributes
        self._acks = acks

    def ack(self) -> None:
        self._acks.put(self.ack_id)


class ResultListener:
    """Own a results subscription filtered to this process and feed results to `on_result`.

    One thread holds a StreamingPull open on the subscription and acks each result on the
    same stream once it is handed over (a short-lived thread confirms each new stream). The
    client library's subscriber would add a dozen threads (leases, dispatch, a callback pool)
    for results that take microseconds to handle.

    The stream is retried as the official client retries it, except that a refusal (FATAL)
    is retried slowly instead of ending the listener: `problem` says why, for /readyz.

    A frozen process (no CPU between requests) cannot send heartbeats, and its stream may die
    unnoticed meanwhile: `ensure_open` lets the first request after a freeze reopen it, on a
    new connection when `channels` is given, before that request relies on it.
    """

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
        # Each result wakes its ride in a span of the ride's trace, which the result carries.
        self._tracing = tracing or Tracing("backend")
        # Called, on a thread of its own, once a lost subscription has been replaced: results
        # published meanwhile reached no subscription, so the rides waiting for them must go
        # out again.
        self.on_resubscribed: Callable[[], object] | None = None
        self._client = client
        self._channels = channels
        self._clock = clock  # a freeze shows as a jump in it
        self._channel: grpc.Channel | None = None  # the stream's own, when `channels` is given
        self._renew_channel = False
        self._project_id = project_id
        self._topic = f"projects/{project_id}/topics/{results_topic}"
        self._prefix = f"{results_topic}-{self.reply_to}"
        self._on_result = on_result
        self._ttl_s = ttl_s
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None  # the open StreamingPull, cancelled by close()
        self._acks: queue.SimpleQueue[str | None] | None = None  # its request side
        self.subscription: str | None = None
        self._generation = 0
        self._alive_at = clock()  # the stream's last sign of life: opened, a response,
        # or a heartbeat or ack leaving
        self._open = threading.Event()  # a stream is open and Pub/Sub accepted it
        self._reopen = threading.Event()  # reopen now, without the back-off
        self._reopen_until = 0.0  # confirmations wait for the reopened stream until then
        self._suspect = False  # a heartbeat's wait spanned a freeze: reopen before relying on it
        self._accepted = False  # Pub/Sub accepted the current stream
        self._carried_acks: list[str] = []  # acks a stream ended before sending, for the next
        self.problem: str | None = None  # why Pub/Sub refuses the stream, shown by /readyz
        self._thread = threading.Thread(target=self._run, name="results", daemon=True)

    def start(self) -> None:
        """Create the subscription and start pulling; raise if Pub/Sub cannot be reached."""
        self._subscribe()
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether Pub/Sub accepted the open stream and no freeze came since its last sign of life.

        Accepted: a first response came, or the subscription was read after the stream opened
        (the emulator sends a stream's headers only with its first message).
        """
        fresh = self._clock() - self._alive_at <= FROZEN_AFTER_S and not self._suspect
        return (
            self._thread.is_alive() and self._open.is_set() and fresh and not self._closing.is_set()
        )

    def ensure_open(self, timeout_s: float = REOPEN_WAIT_S) -> bool:
        """After a freeze, reopen the stream and wait for it, bounded; at once otherwise."""
        now = self._clock()
        if self._suspect or now - self._alive_at > FROZEN_AFTER_S:
            self._reopen_after_freeze(now, timeout_s)
        if now >= self._reopen_until:
            return True  # the path of every request but those just after a freeze
        return self._open.wait(max(0.0, self._reopen_until - now))

    def _reopen_after_freeze(self, now: float, timeout_s: float) -> None:
        """End the stream, which may have died while the process was frozen, and reopen it."""
        with self._lock:
            if not (self._suspect or now - self._alive_at > FROZEN_AFTER_S):
                return  # another request got here first
            silent_s = now - self._alive_at
            self._suspect = False
            self._alive_at = now
            self._reopen_until = now + timeout_s
            self._open.clear()
            self._renew_channel = True
            self._reopen.set()
            call, acks = self._call, self._acks
        log.warning(
            "results stream silent across a freeze, reopening", extra={"silent_s": silent_s}
        )
        if call is None or acks is None:
            return  # none open: the listener's thread opens one now, without its back-off
        # Half-close first: a stream still alive then ends cleanly on the server's side. Only
        # cancelled, the emulator keeps handing it a share of the subscription's messages.
        acks.put(None)
        time.sleep(HALF_CLOSE_S)
        call.cancel()

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop pulling and delete the subscription."""
        self._closing.set()
        self._reopen.set()  # ends a back-off wait
        with self._lock:
            call, subscription = self._call, self.subscription
        if call is not None:
            call.cancel()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
        if self._channel is not None:
            self._channel.close()
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
            self._reopen.clear()
            opened = time.monotonic()
            error: Exception | None = None
            try:
                self._pull(self.subscription or "")
            except Exception as err:  # gRPC's status, or a fault of ours: log it and go on
                error = err
            if self._closing.is_set():
                return
            code = _code(error)
            if code == grpc.StatusCode.NOT_FOUND:
                # Pub/Sub lost the subscription (or the emulator restarted): make a new one.
                log.error("results stream ended, resubscribing", extra={"error": repr(error)})
                if self._resubscribe() and self.on_resubscribed is not None:
                    threading.Thread(
                        target=self.on_resubscribed, name="after-resubscribe", daemon=True
                    ).start()
                failures = 0
                continue
            if code is not None and code in FATAL:
                self._refused(f"results stream refused: {code.name}: {_details(error)}")
                self._reopen.wait(FATAL_RETRY_S)
                continue
            if self._reopen.is_set():
                # A request waits for this stream: the same subscription, so what Pub/Sub gave
                # the lost stream comes again to this one once its ack deadline passes.
                failures = 0
                continue
            if self._accepted and time.monotonic() - opened > STABLE_STREAM_S:
                # Pub/Sub closes streams from time to time; one that lasted reopens at once.
                log.info("results stream closed, reopening", extra={"error": repr(error)})
                failures = 0
                continue
            failures += 1
            if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th... attempt: not a flood
                log.warning(
                    "results stream interrupted, reopening",
                    extra={"error": repr(error), "attempt": failures},
                )
            delay = RESUBSCRIBE_BACKOFF_S[min(failures - 1, len(RESUBSCRIBE_BACKOFF_S) - 1)]
            self._reopen.wait(random.uniform(delay / 2, delay))  # jittered: instances not in step

    def _refused(self, reason: str) -> None:
        """Note why Pub/Sub refuses the stream; log it once, not on every retry."""
        with self._lock:
            changed, self.problem = reason != self.problem, reason
        if changed:
            log.error(
                "results stream refused; /readyz fails until Pub/Sub accepts it, retried every"
                f" {FATAL_RETRY_S:g} s",
                extra={"reason": reason, "subscription": self.subscription},
            )

    def _accept(self, call: Any) -> None:
        """Mark `call` accepted by Pub/Sub, unless a newer stream replaced it meanwhile."""
        with self._lock:
            if self._call is not call or self._renew_channel or self._closing.is_set():
                return
            self._accepted = True
            self._open.set()
            recovered, self.problem = self.problem, None
        if recovered:
            log.info("results stream accepted again", extra={"was": recovered})

    def _confirm(self, call: Any, subscription: str) -> None:
        """Accept a stream once the subscription reads back while the stream stays open."""
        try:
            self._client.get_subscription(
                request={"subscription": subscription}, timeout=OPEN_TIMEOUT_S
            )
        except gexc.PermissionDenied:
            # No pubsub.subscriptions.get: a stream Pub/Sub refuses ends within a round trip.
            if self._closing.wait(ACCEPT_GRACE_S):
                return
        except Exception:  # the stream's own end says why; a first response still accepts it
            return
        # After a refusal, the subscription may read back while the stream is refused again.
        if self.problem and self._closing.wait(ACCEPT_GRACE_S):
            return
        if call.is_active():
            self._accept(call)

    def _pull(self, subscription: str) -> None:
        """Hold one StreamingPull open until it ends; hand over and ack every result."""
        channel = self._stream_channel()
        grpc.channel_ready_future(channel).result(timeout=OPEN_TIMEOUT_S)
        acks: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        with self._lock:
            carried, self._carried_acks = self._carried_acks, []
            self._accepted = False
        for ack_id in carried:  # Pub/Sub takes acks of messages another stream received
            acks.put(ack_id)
        requests = _requests(subscription, acks, self.reply_to, self._woke)
        call = self._streaming_pull(channel, requests, subscription)
        with self._lock:
            if self._closing.is_set() or self._renew_channel:
                call.cancel()  # opened on a channel that a freeze, noticed meanwhile, made suspect
            self._call, self._acks = call, acks
            self._alive_at = self._clock()
        threading.Thread(
            target=self._confirm, args=(call, subscription), name="results-confirm", daemon=True
        ).start()
        try:
            for response in call:
                self._alive_at = self._clock()
                if not self._accepted:
                    self._accept(call)
                for received in response.received_messages:
                    self._on_message(ReceivedResult(received, acks))
        finally:
            with self._lock:
                self._call, self._acks = None, None
                self._open.clear()
                # Acks the request stream had not sent yet go on the next stream; an ack lost
                # with the stream only brings the result again, and the first result wins.
                self._carried_acks += _drain(acks)
            acks.put(None)  # ends the request stream

    def _stream_channel(self) -> grpc.Channel:
        """The stream's channel: a new one after a freeze, as its connection may be lost."""
        with self._lock:
            old, renew = self._channel, self._renew_channel or self._channel is None
            self._renew_channel = False
        if self._channels is None:
            return self._client.transport.grpc_channel  # type: ignore[no-any-return]
        if renew:
            self._channel = self._channels()
            if old is not None:
                old.close()  # cancels what is left on it and closes its connection
        assert self._channel is not None
        return self._channel

    def _streaming_pull(
        self, channel: grpc.Channel, requests: Iterator[Any], subscription: str
    ) -> Any:
        rpc = channel.stream_stream(
            STREAMING_PULL_METHOD,
            request_serializer=_PullRequest.SerializeToString,
            response_deserializer=_PullResponse.FromString,
        )
        # The routing header the official client sends on every stream (streaming_pull_manager).
        return rpc(requests, metadata=[("x-goog-request-params", f"subscription={subscription}")])

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

    def _on_message(self, message: Any) -> None:
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

    def _woke(self, waited_s: float) -> None:
        """Stamp the stream alive after a wait, and suspect if the wait spanned a freeze."""
        if waited_s > FROZEN_AFTER_S:
            # Reopened by the next request (or probe), which must not rely on it meanwhile.
            self._suspect = True
        self._alive_at = self._clock()


def _code(error: BaseException | None) -> grpc.StatusCode | None:
    """The gRPC status code of a failed call, whether raw gRPC's or google-api-core's."""
    if isinstance(error, grpc.Call):
        return error.code()  # type: ignore[no-any-return]
    if isinstance(error, gexc.GoogleAPICallError):
        return error.grpc_status_code
    return None


def _details(error: BaseException | None) -> str:
    return str(error.details()) if isinstance(error, grpc.Call) else repr(error)


def _drain(acks: "queue.SimpleQueue[str | None]") -> list[str]:
    """The ack ids left in a stream's queue once it ended."""
    left: list[str] = []
    while True:
        try:
            ack_id = acks.get_nowait()
        except queue.Empty:
            return left
        if ack_id:
            left.append(ack_id)


def _requests(
    subscription: str,
    acks: "queue.SimpleQueue[str | None]",
    client_id: str = "",
    woke: Callable[[float], None] = lambda waited_s: None,
) -> Iterator[Any]:
    """The client side of a StreamingPull: open it, then send acks as they come, or heartbeats.

    After each wait `woke` hears how long it took: a wait far past its timeout was a freeze.
    """
    # The same client_id on every stream of a listener lets Pub/Sub hand a lost stream's
    # outstanding messages to the reopened one.
    yield _PullRequest(
        subscription=subscription,
        stream_ack_deadline_seconds=STREAM_ACK_DEADLINE_S,
        max_outstanding_messages=MAX_OUTSTANDING,
        client_id=client_id,
    )
    while True:
        waited = time.monotonic()
        try:
            ack_id = acks.get(timeout=HEARTBEAT_S)
        except queue.Empty:
            ack_id = ""
        woke(time.monotonic() - waited)
        if ack_id == "":
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
