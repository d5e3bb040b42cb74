"""Hand-written fakes of gRPC: a failed call's error, a StreamingPull call, its channel."""

import queue
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import grpc
from google.api_core import exceptions as gexc

END = object()  # a response script's entry that ends the stream with OK


class FakeRpcError(grpc.RpcError, grpc.Call):
    """A failed RPC as gRPC raises it: an RpcError that says its status code."""

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details or code.name

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> Any:
        return ()

    def trailing_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Any:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


class FakeStreamingCall:
    """One StreamingPull: records what the client sends; answers what the test scripts.

    `responses` takes StreamingPullResponse protobufs, FakeRpcErrors (the stream ends with
    that status) and END (the stream ends with OK). Bounded: an unscripted wait ends in 10 s.
    """

    def __init__(self, requests: Iterator[Any], metadata: Any, stalled: bool = False) -> None:
        self.metadata = metadata
        self.stalled = stalled  # takes the opening request only, as a stream that is dying
        self.sent: list[Any] = []
        self.responses: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.active = True
        self.consumer = threading.Thread(target=self._consume, args=(requests,), daemon=True)
        self.consumer.start()

    def _consume(self, requests: Iterator[Any]) -> None:
        for request in requests:
            if not self.active:
                return
            self.sent.append(request)
            if self.stalled:
                return

    def __iter__(self) -> "FakeStreamingCall":
        return self

    def __next__(self) -> Any:
        item = self.responses.get(timeout=10)
        if item is END or isinstance(item, Exception):
            self.active = False
            if item is END:
                raise StopIteration
            raise item
        return item

    def is_active(self) -> bool:
        return self.active

    def cancel(self) -> None:
        self.responses.put(FakeRpcError(grpc.StatusCode.CANCELLED))

    def acked(self) -> list[str]:
        return [ack_id for request in self.sent for ack_id in request.ack_ids]


class FakeStreamChannel:
    """A channel that is READY at once and hands out FakeStreamingCalls, kept in `calls`."""

    def __init__(self) -> None:
        self.calls: list[FakeStreamingCall] = []
        self.opened = threading.Semaphore(0)
        self.stall_next = False  # the next stream takes no request after its opening one

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        callback(grpc.ChannelConnectivity.READY)

    def unsubscribe(self, callback: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def stream_stream(self, method: str, request_serializer: Any, response_deserializer: Any):
        assert method == "/google.pubsub.v1.Subscriber/StreamingPull"

        def rpc(requests: Iterator[Any], metadata: Any = None) -> FakeStreamingCall:
            call = FakeStreamingCall(requests, metadata, stalled=self.stall_next)
            self.stall_next = False
            self.calls.append(call)
            self.opened.release()
            return call

        return rpc

    def next_call(self, timeout_s: float = 5.0) -> FakeStreamingCall:
        """Wait for the next stream the listener opens."""
        assert self.opened.acquire(timeout=timeout_s), "no stream was opened"
        return self.calls[-1]


class FakeSubscriberClient:
    """The generated SubscriberClient's admin calls; `get_error` fails get_subscription."""

    def __init__(self, channel: FakeStreamChannel) -> None:
        self.transport = SimpleNamespace(grpc_channel=channel)
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.get_error: Exception | None = None
        self.got = threading.Event()

    def subscription_path(self, project: str, name: str) -> str:
        return f"projects/{project}/subscriptions/{name}"

    def create_subscription(self, request: dict[str, Any], timeout: float) -> None:
        self.created.append(request)

    def get_subscription(self, request: dict[str, Any], timeout: float) -> None:
        self.got.set()
        if self.get_error is not None:
            raise self.get_error

    def delete_subscription(self, request: dict[str, Any], timeout: float) -> None:
        self.deleted.append(request["subscription"])


def permission_denied() -> Exception:
    """get_subscription's error when the caller lacks pubsub.subscriptions.get."""
    return gexc.PermissionDenied("missing pubsub.subscriptions.get")
