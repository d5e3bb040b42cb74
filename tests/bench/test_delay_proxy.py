"""bench.delay_proxy: every byte arrives, in order, a fixed delay later each way."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bench.realistic import delay_proxy


@pytest.fixture
def echo_server() -> Iterator[str]:
    """A loopback server that sends back whatever one connection sends it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()
    thread.join(timeout=5)


def test_a_round_trip_through_the_proxy_takes_twice_the_delay_and_keeps_every_byte(echo_server):
    payload = bytes(range(256)) * 2000  # several chunks

    with delay_proxy(echo_server, delay_ms=50) as (address, _):
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as client:
            started = time.monotonic()
            client.sendall(payload)
            received = b""
            while len(received) < len(payload):
                chunk = client.recv(65536)
                assert chunk, "the proxy closed the connection"
                received += chunk
            elapsed = time.monotonic() - started

    assert received == payload
    assert 0.1 <= elapsed < 2.0
