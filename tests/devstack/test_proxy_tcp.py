"""devstack.proxy's TCP level: bytes arrive in order a fixed delay later; a cut ends streams."""

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from devstack.proxy import DATA, END_HEADERS, END_STREAM, HEADERS, PREFACE, ProxyProcess, TcpProxy


@pytest.fixture
def echo_server() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback server that sends back what one connection sends it (an HTTP/2 client's preface
    excepted, as a server would), and keeps a copy."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    seen: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            while data := conn.recv(65536):
                seen.append(data)
                conn.sendall(data.replace(PREFACE, b""))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}", seen
    server.close()
    thread.join(timeout=5)


def receive(client: socket.socket, size: int) -> bytes:
    received = b""
    while len(received) < size:
        chunk = client.recv(65536)
        assert chunk, "the proxy closed the connection"
        received += chunk
    return received


def test_a_round_trip_through_the_proxy_process_takes_twice_the_delay_and_keeps_every_byte(
    echo_server,
):
    payload = bytes(range(256)) * 2000  # several chunks

    with ProxyProcess(echo_server[0], "tcp", delay_s=0.05) as proxy:
        assert proxy.pid is not None
        host, port = proxy.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as client:
            started = time.monotonic()
            client.sendall(payload)
            received = receive(client, len(payload))
            elapsed = time.monotonic() - started

    assert received == payload
    assert 0.1 <= elapsed < 2.0


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream) + payload
    )


def test_a_cut_half_closes_open_streams_upstream_and_black_holes_the_client(echo_server):
    upstream, seen = echo_server
    opening = PREFACE + frame(HEADERS, END_HEADERS, 1, b"h") + frame(HEADERS, END_HEADERS, 3, b"h")
    opening += frame(DATA, END_STREAM, 3, b"x")  # stream 3 ends; stream 1 stays open

    with TcpProxy(upstream, follow_streams=True) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as client:
            client.sendall(opening)
            assert receive(client, len(opening) - len(PREFACE)) == opening[len(PREFACE) :]
            assert proxy.cut() == (1, 1)
            client.sendall(frame(DATA, 0, 1, b"after the cut"))
            client.settimeout(0.5)
            with pytest.raises(TimeoutError):
                client.recv(100)  # black-holed: no answer, no error
            assert proxy.cut() == (0, 0)  # a connection is cut once

    assert b"".join(seen) == opening + frame(DATA, END_STREAM, 1)
