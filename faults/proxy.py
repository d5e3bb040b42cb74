"""A loopback gRPC proxy whose connections can be lost while a process is frozen.

`cut()` does to every connection with a stream open what a lost NAT entry and a server that
gave up on a silent client do together: the client's side goes quiet (black-holed) or is reset,
and each stream the client had open is ended on the server's side. It ends them with the client's
half-close (an empty DATA frame with END_STREAM), not by closing the upstream connection: a
stream the emulator sees cancelled keeps a share of its subscription's messages, so the drill
would measure that defect instead of the backend. Connections made after a cut pass as usual.
"""

import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field

CHUNK = 64 * 1024
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, CONTINUATION = 0x0, 0x1, 0x3, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4


@dataclass
class _Frames:
    """Split one direction of an HTTP/2 connection into whole frames, noting stream ends."""

    preface: bytes = b""
    buffer: bytes = b""
    in_header_block: bool = False

    def feed(self, data: bytes, open_streams: set[int], from_client: bool) -> bytes:
        """Return the whole frames in `data` (and the buffer); keep the incomplete rest."""
        self.buffer += data
        out = b""
        if self.preface:
            if len(self.buffer) < len(self.preface):
                return b""
            size, self.preface = len(self.preface), b""
            out, self.buffer = self.buffer[:size], self.buffer[size:]
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                break
            kind, flags = self.buffer[3], self.buffer[4]
            stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
            if kind == HEADERS and from_client:
                open_streams.add(stream)
            if kind in (HEADERS, CONTINUATION):
                self.in_header_block = not flags & END_HEADERS
            ends = kind == RST_STREAM or (kind in (DATA, HEADERS) and flags & END_STREAM)
            if ends and stream in open_streams:
                open_streams.discard(stream)
            out, self.buffer = out + self.buffer[: 9 + length], self.buffer[9 + length :]
        return out


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    streams: set[int] = field(default_factory=set)  # opened by the client, not yet ended
    up: _Frames = field(default_factory=lambda: _Frames(preface=PREFACE))
    down: _Frames = field(default_factory=_Frames)
    cut: bool = False


class CuttableProxy:
    """Forward 127.0.0.1:port to `upstream`; `cut()` loses the connections streaming now."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.address = f"127.0.0.1:{self.port}"
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxy", daemon=True)

    def __enter__(self) -> "CuttableProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cut(self, reset: bool = False) -> tuple[int, int]:
        """Lose every connection with a stream open; return how many connections and streams.

        Black-holed (the default), the client's bytes are taken and never answered, so only an
        HTTP/2 keepalive can tell; reset, the client gets an RST at once.
        """
        with self._lock:
            pairs = [p for p in self._pairs if p.streams and not p.cut]
            ended = 0
            for pair in pairs:
                pair.cut = True
                if not pair.up.in_header_block:
                    for stream in sorted(pair.streams):
                        # An empty DATA frame: length 0, type, flags, stream id.
                        header = bytes([0, 0, 0, DATA, END_STREAM]) + struct.pack(">I", stream)
                        pair.upstream.sendall(header)
                        ended += 1
                if reset:
                    self._selector.unregister(pair.client)
                    # SO_LINGER 0: close() sends an RST instead of a FIN.
                    linger = struct.pack("ii", 1, 0)
                    pair.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    pair.client.close()
        return len(pairs), ended

    def close(self) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with self._lock:
            for pair in self._pairs:
                for sock in (pair.client, pair.upstream):
                    sock.close()
            self._pairs.clear()
        self._selector.close()
        self._listener.close()

    def _run(self) -> None:
        while not self._closing.is_set():
            for key, _ in self._selector.select(timeout=0.2):
                with self._lock:
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._forward(key.fileobj, key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        try:
            upstream = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            client.close()
            return
        client.settimeout(5)  # a send blocks at most this long: the drill is never stuck
        pair = _Pair(client, upstream)
        self._pairs.append(pair)
        self._selector.register(client, selectors.EVENT_READ, pair)
        self._selector.register(upstream, selectors.EVENT_READ, pair)

    def _forward(self, sock: socket.socket, pair: _Pair) -> None:
        from_client = sock is pair.client
        try:
            data = sock.recv(CHUNK)
            if pair.cut:
                if not data:  # that side closed: stop watching it, keep the other open
                    self._selector.unregister(sock)
                return  # taken and dropped: the peer sees no error and no answer
            if data:
                frames = (pair.up if from_client else pair.down).feed(
                    data, pair.streams, from_client
                )
                (pair.upstream if from_client else pair.client).sendall(frames)
                return
        except OSError:
            pass
        self._drop(pair)

    def _drop(self, pair: _Pair) -> None:
        for sock in (pair.client, pair.upstream):
            if sock.fileno() >= 0:
                self._selector.unregister(sock)
                sock.close()
        self._pairs.remove(pair)
