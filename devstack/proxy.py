"""The lab's proxy: a loopback hop to the emulator that adds latency and injects faults.

Two levels, one way to run them. `TcpProxy` forwards bytes: every chunk held `delay_s` each
way, in order (a region's round trip; bandwidth is not limited), and, following HTTP/2 streams,
`cut()` loses the connections streaming now. `FaultProxy` (`devstack.grpc_proxy`) forwards
Pub/Sub calls with gRPC faults. `ProxyProcess` runs either in a process of its own, its knobs
called through a pipe, so its CPU shows apart and a drill's threads cannot slow it.
"""

import asyncio
import collections
import contextlib
import multiprocessing
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

CHUNK = 256 * 1024
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, CONTINUATION = 0x0, 0x1, 0x3, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4
START_TIMEOUT_S = 30.0
CONTROL_TIMEOUT_S = 20.0  # a knob answers at once; "stop" waits out the gRPC streams' detach


@dataclass
class _Way:
    """One direction of a connection: whole HTTP/2 frames (if followed), held until due."""

    preface: bytes = b""
    rest: bytes = b""
    in_header_block: bool = False
    held: collections.deque[tuple[float, bytes]] = field(default_factory=collections.deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def frames(self, data: bytes, streams: set[int], from_client: bool) -> bytes:
        """Return the whole frames in what came so far, noting streams opened and ended."""
        buf, pos = self.rest + data, 0
        if self.preface:
            if len(buf) < len(self.preface):
                self.rest = buf
                return b""
            pos, self.preface = len(self.preface), b""
        while len(buf) - pos >= 9 and len(buf) >= (
            end := pos + 9 + int.from_bytes(buf[pos : pos + 3])
        ):
            kind, flags = buf[pos + 3], buf[pos + 4]
            stream = int.from_bytes(buf[pos + 5 : pos + 9]) & 0x7FFFFFFF
            if kind == HEADERS and from_client:
                streams.add(stream)
            if kind in (HEADERS, CONTINUATION):
                self.in_header_block = not flags & END_HEADERS
            if kind == RST_STREAM or (kind in (DATA, HEADERS) and flags & END_STREAM):
                streams.discard(stream)
            pos = end
        self.rest = buf[pos:]
        return buf[:pos]

    def send(self, data: bytes, delay_s: float) -> None:
        self.held.append((time.monotonic() + delay_s, data))
        self.arrived.set()


@dataclass
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    up: _Way = field(default_factory=lambda: _Way(preface=PREFACE))
    down: _Way = field(default_factory=_Way)
    streams: set[int] = field(default_factory=set)  # opened by the client, not yet ended
    cut: bool = False


class TcpProxy:
    """Forward 127.0.0.1:port to `upstream`, `delay_s` each way, on an event loop of its own.

    With `follow_streams`, each direction is split into HTTP/2 frames so that `cut()` knows the
    open streams; without, bytes pass as they come (the cheaper hop of the benchmarks).
    """

    def __init__(self, upstream: str, delay_s: float = 0.0, follow_streams: bool = False) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream, self._to = upstream, (host, int(port))
        self.delay_s, self.follow_streams = delay_s, follow_streams
        self._pairs: list[_Pair] = []
        # The loop runs in a thread of its own from the start: the caller's thread may already run
        # an event loop of its own (Playwright's sync API does), and a thread runs one at a time.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.address = f"127.0.0.1:{self.port}"

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            for pair in self._pairs:
                pair.client.transport.abort()
                pair.upstream.transport.abort()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def cut(self, reset: bool = False) -> tuple[int, int]:
        """Lose every connection with a stream open; return how many connections and streams.

        Each open stream is half-closed upstream; the client is black-holed or, with `reset`,
        sent an RST (docs/reliability.md, the backend-frozen drill). Later connections pass.
        """
        return asyncio.run_coroutine_threadsafe(self._cut(reset), self._loop).result(5)

    async def _cut(self, reset: bool) -> tuple[int, int]:
        pairs = [p for p in self._pairs if p.streams and not p.cut]
        ended = 0
        for pair in pairs:
            pair.cut = True
            if not pair.up.in_header_block:  # after what is held: whole frames, in order
                for stream in sorted(pair.streams):
                    pair.up.send(bytes([0, 0, 0, DATA, END_STREAM]) + struct.pack(">I", stream), 0)
                    ended += 1
            if reset:  # SO_LINGER 0: the close sends an RST instead of a FIN
                sock = pair.client.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                pair.client.transport.abort()
        return len(pairs), ended

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self._to)
        except OSError:
            client_w.close()
            return
        for w in (client_w, up_w):  # the delay is ours, not Nagle's
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(client_w, up_w)
        self._pairs.append(pair)
        await asyncio.gather(
            self._pipe(client_r, pair, True), self._pipe(up_r, pair, False), return_exceptions=True
        )
        self._pairs.remove(pair)
        for w in (client_w, up_w):
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, pair: _Pair, from_client: bool) -> None:
        """Copy one direction, each chunk written `delay_s` after it was read."""
        way, writer = (pair.up, pair.upstream) if from_client else (pair.down, pair.client)
        ended = False

        async def send() -> None:
            while way.held or not ended:
                if not way.held:
                    way.arrived.clear()
                    await way.arrived.wait()
                    continue
                due, data = way.held[0]
                if (wait_s := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait_s)
                way.held.popleft()
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(CHUNK):
                if pair.cut:
                    continue  # taken and dropped: the peer sees no error and no answer
                if self.follow_streams:
                    data = way.frames(data, pair.streams, from_client)
                way.send(data, self.delay_s)
        except ConnectionError:
            pass
        finally:
            ended = True
            way.arrived.set()
            with contextlib.suppress(ConnectionError):
                await sender
                if not pair.cut:  # a cut connection's other side stays open
                    writer.write_eof()


class ProxyProcess:
    """A proxy (`kind` "grpc": FaultProxy, "tcp": TcpProxy) in a process of its own.

    Its knobs are the proxy's methods, called through a pipe: `proxy.set_latency(0.1)`.
    """

    def __init__(self, upstream: str, kind: str = "grpc", **options: Any) -> None:
        context = multiprocessing.get_context("spawn")  # no fork: gRPC's threads do not survive it
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_serve, args=(kind, upstream, options, child), name=f"{kind}-proxy", daemon=True
        )
        self._process.start()
        child.close()
        self.upstream, self.pid = upstream, int(self._process.pid or 0)
        try:
            if not self._conn.poll(START_TIMEOUT_S):
                raise EOFError
            self.address: str = self._conn.recv()
        except EOFError:  # not started in time, or gone
            self._process.kill()
            raise RuntimeError(f"the proxy did not start within {START_TIMEOUT_S:g} s") from None

    def __enter__(self) -> "ProxyProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._conn.send((name, args, kwargs))
            if not self._conn.poll(CONTROL_TIMEOUT_S):
                raise RuntimeError(f"the proxy did not answer {name} in time")
            ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        """Stop the proxy (a gRPC one ends its streams cleanly upstream), then its process."""
        if not self._process.is_alive():
            return
        with contextlib.suppress(RuntimeError, OSError, EOFError):
            self._call("stop")
        self._conn.close()
        self._process.join(timeout=CONTROL_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)


def _serve(kind: str, upstream: str, options: dict[str, Any], conn: Connection) -> None:
    """The proxy process: start the proxy, then run the knob calls the pipe brings."""
    if kind == "grpc":
        from .grpc_proxy import FaultProxy

        proxy: Any = FaultProxy(upstream, **options)
    else:
        proxy = TcpProxy(upstream, **options)
    conn.send(proxy.address)
    try:
        while True:  # ends with "stop", or when the caller's process goes (EOFError)
            name, args, kwargs = conn.recv()
            try:
                conn.send((True, getattr(proxy, name)(*args, **kwargs)))
            except Exception as err:  # the caller raises it: a bad knob value, say
                conn.send((False, err))
            if name == "stop":
                return
    except EOFError:
        proxy.stop()
