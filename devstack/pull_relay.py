"""The StreamingPull side of the fault proxy: relay one stream, and end it without a cancel.

A stream the emulator sees cancelled keeps taking a share of its subscription's messages, so
an ended client stream half-closes upstream and nacks what is left (docs/reliability.md).
"""

import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc
from google.pubsub_v1.types import StreamingPullRequest, StreamingPullResponse
from grpc import StatusCode as Code

if TYPE_CHECKING:
    from .grpc_proxy import FaultProxy

STREAMING_PULL = "StreamingPull"
# What the relay's threads wait for at most, so that a closed stream notices in time.
POLL_S = 0.05
# How long an upstream stream may take to end after its half-close before it is cancelled.
DETACH_TIMEOUT_S = 10.0
# Pub/Sub's words when it closes a stream, so clients see what they would see in GCP.
CLOSED_DETAILS = "The service was unable to fulfill your request. Please try again. [Code: 14]"
# Metadata that gRPC sets itself on the upstream call.
OWN_METADATA = {"user-agent", "te", "content-type", "content-length"}
_PullRequest = StreamingPullRequest.pb()
_PullResponse = StreamingPullResponse.pb()


class PullRelay:
    """One client StreamingPull and the upstream stream it rides on, detached cleanly."""

    def __init__(
        self,
        proxy: "FaultProxy",
        channel: grpc.Channel,
        full_method: str,
        first: bytes,
        requests: Iterator[bytes],
        context: grpc.ServicerContext,
    ) -> None:
        self.proxy, self.first, self.context = proxy, first, context
        self.subscription = _PullRequest.FromString(first).subscription
        self.opened = time.monotonic()
        self.upstream_ended = threading.Event()
        self._lock = threading.Lock()
        self._detached = False
        self._end: tuple[Code, str] | None = None  # set to close the client's stream
        self._up: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()  # None: half-close
        self._down: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
        self._up.put(first)
        rpc = channel.stream_stream(full_method)
        self._call = rpc(iter(self._up.get, None), metadata=forwarded(context))
        context.add_callback(self._client_gone)
        threading.Thread(target=self._pump_up, args=(requests,), daemon=True).start()
        threading.Thread(target=self._pump_down, daemon=True).start()

    def end(self, code: Code, details: str) -> None:
        """Ask the client's stream to end with `code` (the upstream one is then detached)."""
        with self._lock:
            if self._end is None:
                self._end = (code, details)
        self._down.put(None)  # wakes responses()

    def _client_gone(self) -> None:
        """The client's RPC is over: detach now, not when gRPC drops the response generator."""
        self.end(Code.CANCELLED, "client gone")
        self._detach()

    def responses(self) -> Iterator[bytes]:
        """Yield the emulator's responses to the client, delayed, until the stream ends."""
        try:
            while True:
                if (ended := self._check()) is not None:
                    code, details = ended
                    if code not in (Code.OK, Code.CANCELLED):
                        self.context.set_code(code)
                        self.context.set_details(details)
                    return  # detached below
                try:
                    item = self._down.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if item is None:
                    continue  # an end, or the upstream stream's, read by _check
                arrived, response = item
                self._wait(arrived + self.proxy.faults.latency(STREAMING_PULL))
                if self._detached:  # the client went while this one was delayed
                    self._nack([response])
                    continue
                yield response
        finally:
            self._detach()

    def _check(self) -> tuple[Code, str] | None:
        """Whether the client's stream must end now, and with which status."""
        faults = self.proxy.faults
        if (code := faults.denies(self.first)) is not None:
            self.proxy.count(STREAMING_PULL, code.name)
            return code, "StreamingPull denied by the fault proxy"
        after = faults.close_streams_after_s
        if after is not None and time.monotonic() - self.opened >= after:
            self.proxy.count(STREAMING_PULL, "closed")
            return Code.UNAVAILABLE, CLOSED_DETAILS
        with self._lock:
            return self._end

    def _wait(self, until: float) -> None:
        while (left := until - time.monotonic()) > 0 and self._end is None:
            time.sleep(min(left, POLL_S))

    def _detach(self) -> None:
        """Half-close upstream and nack what the client will not get; cancel only if stuck."""
        with self._lock:
            if self._detached:
                return
            self._detached = True
            left: list[bytes] = []
            while True:
                try:
                    item = self._down.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    left.append(item[1])
        self._up.put(None)
        self._nack(left)
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        if not self.upstream_ended.wait(DETACH_TIMEOUT_S):
            self.proxy.count(STREAMING_PULL, "upstream cancelled (did not end)")
            self._call.cancel()

    def _pump_up(self, requests: Iterator[bytes]) -> None:
        """Forward the client's acks, deadline changes and heartbeats until it or we stop."""
        try:
            for request in requests:
                with self._lock:
                    if self._detached:
                        return
                    self._up.put(request)
        except Exception:  # the client's side ended (cancelled or closed): detach below
            pass
        finally:
            self.end(Code.CANCELLED, "client gone")

    def _pump_down(self) -> None:
        """Read the emulator's responses: queue them for the client, or nack them if detached."""
        code, details = Code.OK, ""
        try:
            for response in self._call:
                with self._lock:
                    if not self._detached:
                        self._down.put((time.monotonic(), response))
                        continue
                self._nack([response])
        except grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
        finally:
            self.upstream_ended.set()
            self.end(code, details)

    def _nack(self, responses: list[bytes]) -> None:
        ack_ids = [
            received.ack_id
            for response in responses
            for received in _PullResponse.FromString(response).received_messages
        ]
        if ack_ids:
            self.proxy.nack(self.subscription, ack_ids)


def forwarded(context: grpc.ServicerContext) -> list[tuple[str, str | bytes]]:
    """The client's metadata (routing headers and the like), minus what gRPC sets itself."""
    return [
        (key, value)
        for key, value in context.invocation_metadata()
        if key not in OWN_METADATA and not key.startswith((":", "grpc-"))
    ]
