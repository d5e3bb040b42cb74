"""A gRPC proxy in front of the Pub/Sub emulator with the faults GCP shows and it does not.

Every method is forwarded as raw bytes; StreamingPull through `devstack.pull_relay`, which never
cancels upstream. The knobs and how they are tested: docs/reliability.md ("the fault proxy").
"""

import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import grpc
from google.pubsub_v1.types import ModifyAckDeadlineRequest
from grpc import StatusCode as Code

from .pull_relay import CLOSED_DETAILS, DETACH_TIMEOUT_S, STREAMING_PULL, PullRelay, forwarded

log = logging.getLogger("devstack.grpc_proxy")


When = Literal["before", "after", "either"]
UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
NACK_TIMEOUT_S = 5.0
WORKERS = 128  # threads: each open StreamingPull holds one
_ModAck = ModifyAckDeadlineRequest.pb()


@dataclass(frozen=True)
class Faults:
    """The knobs, replaced whole under the proxy's lock, so each call reads one consistent set."""

    latency_s: dict[str, float] = field(default_factory=dict)  # by method name, e.g. "Publish"
    default_latency_s: float = 0.0
    publish_failure_share: float = 0.0
    publish_failure_code: Code = Code.UNAVAILABLE
    publish_failure_when: When = "before"
    close_streams_after_s: float | None = None
    deny_code: Code | None = None
    deny_pattern: re.Pattern[bytes] | None = None  # None with a code: every call is denied

    def latency(self, method: str) -> float:
        return self.latency_s.get(method, self.default_latency_s)

    def denies(self, request: bytes) -> Code | None:
        """The code a call carrying `request` is answered with, or None to forward it."""
        if self.deny_code is None:
            return None
        if self.deny_pattern is None or self.deny_pattern.search(request):
            return self.deny_code
        return None


class FaultProxy(grpc.GenericRpcHandler):
    """Listen on a loopback port and forward every Pub/Sub call to `upstream`, faults applied."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._channel = grpc.insecure_channel(upstream, options=UNLIMITED)
        self._faults = Faults()
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._random = random.Random(0)
        self._streams: set[PullRelay] = set()
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="proxy"),
            handlers=[self],
            options=UNLIMITED,
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"
        self._server.start()
        log.info("gRPC fault proxy on %s, forwarding to %s", self.address, self.upstream)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """End every stream cleanly upstream, stop serving, and close the upstream channel."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.end(Code.UNAVAILABLE, CLOSED_DETAILS)
        deadline = time.monotonic() + DETACH_TIMEOUT_S
        for stream in streams:
            stream.upstream_ended.wait(max(0.0, deadline - time.monotonic()))
        self._server.stop(1.0).wait(6.0)  # a second's grace for calls in flight
        self._channel.close()

    # The knobs. Each replaces the whole set at once: a call in progress keeps the set it read.

    @property
    def faults(self) -> Faults:
        return self._faults

    def _change(self, **changes: Any) -> None:
        with self._lock:
            self._faults = replace(self._faults, **changes)

    def set_latency(self, default_s: float | None = None, **by_method_s: float) -> None:
        """Add latency to calls: `Publish=0.03`, `StreamingPull=0.03` (its responses), a default."""
        default = self._faults.default_latency_s if default_s is None else default_s
        self._change(latency_s=self._faults.latency_s | by_method_s, default_latency_s=default)

    def fail_publishes(
        self, share: float, code: Code = Code.UNAVAILABLE, when: When = "before"
    ) -> None:
        """Fail `share` of Publish calls with `code`, before forwarding, after, or either way.

        "after" forwards first: the message is published, yet the client sees a failure, as when
        Pub/Sub's answer is lost. "either" picks one of the two for each failing call.
        """
        if code not in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED):
            raise ValueError(f"Publish failures are UNAVAILABLE or DEADLINE_EXCEEDED, not {code}")
        self._change(
            publish_failure_share=share, publish_failure_code=code, publish_failure_when=when
        )

    def close_streams_after(self, seconds: float | None) -> None:
        """Close every StreamingPull (open or to come) `seconds` after it opened; None: never."""
        self._change(close_streams_after_s=seconds)

    def deny(self, code: Code, subscription: str | None = None) -> None:
        """Answer calls naming a subscription that matches the regex `subscription` with `code`.

        None denies every call. Open StreamingPulls on matching subscriptions end with `code`.
        """
        if code not in (Code.PERMISSION_DENIED, Code.NOT_FOUND):
            raise ValueError(f"deny answers PERMISSION_DENIED or NOT_FOUND, not {code}")
        pattern = None if subscription is None else re.compile(subscription.encode())
        self._change(deny_code=code, deny_pattern=pattern)

    def allow(self) -> None:
        self._change(deny_code=None, deny_pattern=None)

    def clear(self) -> None:
        """Remove every fault; the counts stay."""
        with self._lock:
            self._faults = Faults()

    def counts(self) -> dict[str, dict[str, int]]:
        """Calls and faults by method: {"Publish": {"calls": 9, "UNAVAILABLE before": 2}}."""
        with self._lock:
            items = list(self._counts.items())
        found: dict[str, dict[str, int]] = {}
        for (method, what), n in sorted(items):
            found.setdefault(method, {})[what] = n
        return found

    def count(self, method: str, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[(method, what)] += n

    # Forwarding.

    def unary(self, full_method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        method = full_method.rsplit("/", 1)[-1]
        faults = self._faults
        self.count(method, "calls")
        if delay := faults.latency(method):
            time.sleep(delay)
        if code := faults.denies(request):
            self.count(method, code.name)
            context.abort(code, f"{method} denied by the fault proxy")
        failing = method == "Publish" and self._draw(faults.publish_failure_share)
        when = faults.publish_failure_when
        if failing and when == "either":
            when = "before" if self._draw(0.5) else "after"
        if failing and when == "before":
            self.count(method, f"{faults.publish_failure_code.name} before")
            context.abort(faults.publish_failure_code, "Publish failed by the fault proxy")
        rpc = self._channel.unary_unary(full_method)
        try:
            response: bytes = rpc(
                request, timeout=context.time_remaining(), metadata=forwarded(context)
            )
        except grpc.RpcError as err:
            context.abort(err.code(), err.details() or "")
        if failing:
            self.count(method, f"{faults.publish_failure_code.name} after")
            context.abort(faults.publish_failure_code, "Publish answer lost by the fault proxy")
        return response

    def streaming_pull(
        self, full_method: str, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        first = next(requests, None)
        if first is None:
            return
        self.count(STREAMING_PULL, "calls")
        if code := self._faults.denies(first):
            self.count(STREAMING_PULL, code.name)
            context.abort(code, "StreamingPull denied by the fault proxy")
        stream = PullRelay(self, self._channel, full_method, first, requests, context)
        with self._lock:
            self._streams.add(stream)
        try:
            yield from stream.responses()
        finally:
            with self._lock:
                self._streams.discard(stream)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        """Route every method here: StreamingPull as a stream, everything else unary."""
        method: str = details.method  # type: ignore[attr-defined]
        if method.endswith("/" + STREAMING_PULL):
            return grpc.stream_stream_rpc_method_handler(
                lambda requests, context: self.streaming_pull(method, requests, context)
            )
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self.unary(method, request, context)
        )

    def nack(self, subscription: str, ack_ids: list[str]) -> None:
        """Hand messages that reached a detached stream back to the subscription at once."""
        request = _ModAck(subscription=subscription, ack_ids=ack_ids, ack_deadline_seconds=0)
        rpc = self._channel.unary_unary("/google.pubsub.v1.Subscriber/ModifyAckDeadline")
        try:
            rpc(request.SerializeToString(), timeout=NACK_TIMEOUT_S)
        except grpc.RpcError as err:
            # Left alone, they come back anyway once their ack deadline passes.
            log.warning("could not nack %d messages: %s", len(ack_ids), err.code())
            return
        self.count(STREAMING_PULL, "nacked after detach", len(ack_ids))

    def _draw(self, share: float) -> bool:
        with self._lock:
            return self._random.random() < share
