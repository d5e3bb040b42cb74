"""One StreamingPull held open by hand: the results listener's and the recorder's.

One thread holds the stream and hands every message to `_on_message`; acks (and nacks, a
deadline of 0) go back on the same stream's request side, together, as they come. The client
library's subscriber would add a dozen threads (leases, dispatch, a callback pool) and send
every ack, and a ModifyAckDeadline for every response received, as unary RPCs of their own.

The stream is retried as the official client retries it, except that a refusal (FATAL) is
retried slowly instead of ending the stream: `problem` says why, for /readyz.

A frozen process (no CPU between requests) cannot send heartbeats, and its stream may die
unnoticed meanwhile: `ensure_open` reopens it, on a new connection when `channels` is given.
"""

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport
from google.pubsub_v1.types import StreamingPullRequest, StreamingPullResponse

log = logging.getLogger(__name__)

RESUBSCRIBE_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
STABLE_STREAM_S = 10.0  # a stream that stayed open this long ended normally, not in a failure
# Codes that retrying at once will not change, as the official client's streaming pull stops on
# them (_TERMINATING_STREAM_ERRORS in google/cloud/pubsub_v1/subscriber/_protocol/
# streaming_pull_manager.py), plus FAILED_PRECONDITION, with which Pub/Sub refuses a filter.
# NOT_FOUND is `_lost_subscription`'s.
_Code = grpc.StatusCode
FATAL = frozenset(
    {
        _Code.PERMISSION_DENIED,
        _Code.UNAUTHENTICATED,
        _Code.INVALID_ARGUMENT,
        _Code.FAILED_PRECONDITION,
    }
)
# After a fatal code the stream still tries again, slowly, so that a fixed IAM grant (or
# filter) recovers without a restart; /readyz fails with the reason meanwhile.
FATAL_RETRY_S = 10.0
# Without pubsub.subscriptions.get, a stream still open this long after it opened is taken as
# accepted: Pub/Sub refuses a stream within a round trip.
ACCEPT_GRACE_S = 1.0
STREAMING_PULL_METHOD = "/google.pubsub.v1.Subscriber/StreamingPull"
# How long a message stays leased to this stream before Pub/Sub may hand it to another. Nothing
# extends it: both readers settle a message within it (the recorder, which holds one longest,
# within a batch's write and its retry pause); one held longer only comes again.
STREAM_ACK_DEADLINE_S = 10
MAX_OUTSTANDING = 1000  # Pub/Sub's flow control: unacked messages the stream may hold
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

# The request side's queue: an ack id to ack, (ack id, seconds) to change its deadline (0, a
# nack, hands it back at once), None to half-close the stream.
Settle = str | tuple[str, int] | None


def stream_channels(emulator_host: str = "") -> Callable[[], grpc.Channel]:
    """Return a factory of channels for a stream, each on a connection of its own."""
    # Its own connection (a local subchannel pool), not the publisher's: after a freeze the
    # stream drops it for a new one, since a connection lost silently still looks READY.
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


class Received:
    """One message from a stream: what `_on_message` reads, and how to settle it."""

    __slots__ = ("ack_id", "attributes", "data", "message_id", "_settle")

    def __init__(self, received: Any, settle: "queue.SimpleQueue[Settle]") -> None:
        self.ack_id: str = received.ack_id
        self.message_id: str = received.message.message_id
        self.data: bytes = received.message.data
        self.attributes: Mapping[str, str] = received.message.attributes
        self._settle = settle

    def ack(self) -> None:
        self._settle.put(self.ack_id)

    def nack(self) -> None:
        """Hand the message back to Pub/Sub now, for this or another stream."""
        self._settle.put((self.ack_id, 0))


class PullStream:
    """Hold a StreamingPull open on `subscription` on a thread of its own, until closed.

    Subclasses handle each message (`_on_message`) and a lost subscription.
    """

    name = "stream"  # in logs and thread names

    def __init__(
        self,
        client: Any,
        client_id: str,
        channels: Callable[[], grpc.Channel] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_outstanding: int = MAX_OUTSTANDING,
    ) -> None:
        self._client = client  # admin calls, and the channel when `channels` is not given
        # The same client_id on every stream lets Pub/Sub hand a lost stream's outstanding
        # messages to the reopened one.
        self._client_id = client_id
        self._channels = channels
        self._clock = clock  # a freeze shows as a jump in it
        self._max_outstanding = max_outstanding
        self._channel: grpc.Channel | None = None  # the stream's own, when `channels` is given
        self._renew_channel = False
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None  # the open StreamingPull, cancelled by close()
        self._acks: queue.SimpleQueue[Settle] | None = None  # its request side
        self.subscription: str | None = None
        self._alive_at = clock()  # the stream's last sign of life: opened, a response,
        # or a heartbeat or ack leaving
        self._open = threading.Event()  # a stream is open and Pub/Sub accepted it
        self._reopen = threading.Event()  # reopen now, without the back-off
        self._reopen_until = 0.0  # requests wait for the reopened stream until then
        self._suspect = False  # a heartbeat's wait spanned a freeze: reopen before relying on it
        self._accepted = False  # Pub/Sub accepted the current stream
        self._carried_acks: list[Settle] = []  # what a stream ended before sending, for the next
        self.problem: str | None = None  # why Pub/Sub refuses the stream, shown by /readyz
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

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
            f"{self.name} stream silent across a freeze, reopening", extra={"silent_s": silent_s}
        )
        if call is None or acks is None:
            return  # none open: the stream's thread opens one now, without its back-off
        # Half-close first: a stream still alive then ends cleanly on the server's side. Only
        # cancelled, the emulator keeps handing it a share of the subscription's messages.
        acks.put(None)
        time.sleep(HALF_CLOSE_S)
        call.cancel()

    def _close_stream(self, timeout_s: float) -> None:
        """Stop pulling: what waits to be acked leaves first, in the stream's half-close."""
        self._closing.set()
        self._reopen.set()  # ends a back-off wait
        with self._lock:
            call, acks = self._call, self._acks
        if acks is not None:
            acks.put(None)
        if call is not None:
            self._thread.join(timeout=min(HALF_CLOSE_S, timeout_s))
            call.cancel()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
        if self._channel is not None:
            self._channel.close()

    def _run(self) -> None:
        """Pull until closed; reopen an interrupted stream, after a back-off when it failed."""
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
                self._lost_subscription(error)
                failures = 0
                continue
            if code is not None and code in FATAL:
                self._refused(f"{self.name} stream refused: {code.name}: {_details(error)}")
                self._reopen.wait(FATAL_RETRY_S)
                continue
            if self._reopen.is_set():
                # A request waits for this stream: the same subscription, so what Pub/Sub gave
                # the lost stream comes again to this one once its ack deadline passes.
                failures = 0
                continue
            if self._accepted and time.monotonic() - opened > STABLE_STREAM_S:
                # Pub/Sub closes streams from time to time; one that lasted reopens at once.
                log.info(f"{self.name} stream closed, reopening", extra={"error": repr(error)})
                failures = 0
                continue
            failures += 1
            if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th... attempt: not a flood
                log.warning(
                    f"{self.name} stream interrupted, reopening",
                    extra={"error": repr(error), "attempt": failures},
                )
            delay = RESUBSCRIBE_BACKOFF_S[min(failures - 1, len(RESUBSCRIBE_BACKOFF_S) - 1)]
            self._reopen.wait(random.uniform(delay / 2, delay))  # jittered: instances not in step

    def _lost_subscription(self, error: BaseException | None) -> None:
        """NOT_FOUND: the subscription is gone. Here: made by setup, wait for it as for IAM."""
        self._refused(f"{self.name} subscription not found: {_details(error)}")
        self._reopen.wait(FATAL_RETRY_S)

    def _refused(self, reason: str) -> None:
        """Note why Pub/Sub refuses the stream; log it once, not on every retry."""
        with self._lock:
            changed, self.problem = reason != self.problem, reason
        if changed:
            log.error(
                f"{self.name} stream refused; /readyz fails until Pub/Sub accepts it, retried"
                f" every {FATAL_RETRY_S:g} s",
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
            log.info(f"{self.name} stream accepted again", extra={"was": recovered})

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
        """Hold one StreamingPull open until it ends; hand over every message."""
        channel = self._stream_channel()
        grpc.channel_ready_future(channel).result(timeout=OPEN_TIMEOUT_S)
        acks: queue.SimpleQueue[Settle] = queue.SimpleQueue()
        with self._lock:
            carried, self._carried_acks = self._carried_acks, []
            self._accepted = False
        for settle in carried:  # Pub/Sub takes acks of messages another stream received
            acks.put(settle)
        requests = _requests(subscription, acks, self._client_id, self._woke, self._max_outstanding)
        call = self._streaming_pull(channel, requests, subscription)
        with self._lock:
            if self._closing.is_set() or self._renew_channel:
                call.cancel()  # opened on a channel that a freeze, noticed meanwhile, made suspect
            self._call, self._acks = call, acks
            self._alive_at = self._clock()
        threading.Thread(
            target=self._confirm,
            args=(call, subscription),
            name=f"{self.name}-confirm",
            daemon=True,
        ).start()
        try:
            for response in call:
                self._alive_at = self._clock()
                if not self._accepted:
                    self._accept(call)
                for received in response.received_messages:
                    self._on_message(Received(received, acks))
        finally:
            with self._lock:
                self._call, self._acks = None, None
                self._open.clear()
                # Acks the request stream had not sent yet go on the next stream; an ack lost
                # with the stream only brings the message again, and the first result wins.
                self._carried_acks += _drain(acks)
            acks.put(None)  # ends the request stream

    def _on_message(self, message: Received) -> None:
        raise NotImplementedError

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


def _drain(acks: "queue.SimpleQueue[Settle]") -> list[Settle]:
    """What was left to send in a stream's queue once it ended."""
    left: list[Settle] = []
    while True:
        try:
            settle = acks.get_nowait()
        except queue.Empty:
            return left
        if settle:
            left.append(settle)


def _requests(
    subscription: str,
    acks: "queue.SimpleQueue[Settle]",
    client_id: str = "",
    woke: Callable[[float], None] = lambda waited_s: None,
    max_outstanding: int = MAX_OUTSTANDING,
) -> Iterator[Any]:
    """The client side of a StreamingPull: open it, then send acks as they come, or heartbeats.

    After each wait `woke` hears how long it took: a wait far past its timeout was a freeze.
    """
    yield _PullRequest(
        subscription=subscription,
        stream_ack_deadline_seconds=STREAM_ACK_DEADLINE_S,
        max_outstanding_messages=max_outstanding,
        client_id=client_id,
    )
    while True:
        waited = time.monotonic()
        try:
            settle = acks.get(timeout=HEARTBEAT_S)
        except queue.Empty:
            settle = ""
        woke(time.monotonic() - waited)
        if settle == "":
            yield _PullRequest()  # keeps an idle stream open, as the client library does
            continue
        ack_ids: list[str] = []
        deadline_ids: list[str] = []
        deadlines: list[int] = []
        while settle is not None:
            if isinstance(settle, str):
                ack_ids.append(settle)
            else:
                deadline_ids.append(settle[0])
                deadlines.append(settle[1])
            if len(ack_ids) + len(deadline_ids) >= MAX_ACKS_PER_REQUEST:
                break  # the rest in the next request
            try:
                settle = acks.get_nowait()
            except queue.Empty:
                break
        if ack_ids or deadline_ids:
            yield _PullRequest(
                ack_ids=ack_ids,
                modify_deadline_ack_ids=deadline_ids,
                modify_deadline_seconds=deadlines,
            )
        if settle is None:
            return
