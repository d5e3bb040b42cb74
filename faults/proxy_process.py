"""The fault proxy in a process of its own, driven through a pipe with the same knobs."""

import multiprocessing
import threading
from multiprocessing.connection import Connection
from typing import Any

from grpc import StatusCode as Code

from .grpc_proxy import FaultProxy, When
from .pull_relay import DETACH_TIMEOUT_S

CONTROL_TIMEOUT_S = DETACH_TIMEOUT_S + 10  # a knob call answers at once; "stop" takes longest


class ProxyProcess:
    """A FaultProxy in a process of its own, with the same knobs.

    A drill's client threads (hundreds of rides a second) would hold the GIL the proxy needs to
    forward calls, adding latency that no knob asked for; in its own process it adds only that.
    """

    def __init__(self, upstream: str, start_timeout_s: float = 30.0) -> None:
        context = multiprocessing.get_context("spawn")  # no fork: gRPC's threads do not survive it
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_serve, args=(upstream, child), name="grpc-fault-proxy", daemon=True
        )
        self._process.start()
        child.close()
        try:
            if not self._conn.poll(start_timeout_s):
                raise EOFError
            self.address: str = self._conn.recv()
        except EOFError:
            self._process.kill()
            raise RuntimeError(
                f"the fault proxy did not start within {start_timeout_s:g} s"
            ) from None
        self.upstream = upstream

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._conn.send((name, args, kwargs))
            if not self._conn.poll(CONTROL_TIMEOUT_S):
                raise RuntimeError(f"the fault proxy did not answer {name} in time")
            ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def set_latency(self, default_s: float | None = None, **by_method_s: float) -> None:
        self._call("set_latency", default_s, **by_method_s)

    def fail_publishes(
        self, share: float, code: Code = Code.UNAVAILABLE, when: When = "before"
    ) -> None:
        self._call("fail_publishes", share, code, when)

    def close_streams_after(self, seconds: float | None) -> None:
        self._call("close_streams_after", seconds)

    def deny(self, code: Code, subscription: str | None = None) -> None:
        self._call("deny", code, subscription)

    def allow(self) -> None:
        self._call("allow")

    def clear(self) -> None:
        self._call("clear")

    def counts(self) -> dict[str, dict[str, int]]:
        return self._call("counts")  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Stop the proxy (its streams end cleanly upstream), then its process."""
        if not self._process.is_alive():
            return
        try:
            self._call("stop")
        except (RuntimeError, OSError, EOFError):
            pass
        self._conn.close()
        self._process.join(timeout=DETACH_TIMEOUT_S + 5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)


def _serve(upstream: str, conn: Connection) -> None:
    """The proxy process: start a FaultProxy, then run the knob calls the pipe brings."""
    proxy = FaultProxy(upstream)
    proxy.start()
    conn.send(proxy.address)
    try:
        while True:  # ends with "stop", or when the drill's process goes (EOFError)
            name, args, kwargs = conn.recv()
            try:
                conn.send((True, getattr(proxy, name)(*args, **kwargs)))
            except Exception as err:  # the caller raises it: a bad knob value, say
                conn.send((False, err))
            if name == "stop":
                return
    except EOFError:
        proxy.stop()
