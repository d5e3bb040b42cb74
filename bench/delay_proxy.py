"""A loopback TCP proxy that delays every byte by a fixed time each way, as a region's network.

`python -m bench.delay_proxy --upstream 127.0.0.1:8085 --delay-ms 15 --port-file PATH` listens
on a free loopback port, writes it to PATH, and forwards each connection to the upstream with
every chunk held `delay-ms` in each direction, in order. Bandwidth is not limited: a round trip
costs twice the delay, whatever is in flight. It runs in a process of its own, so its CPU shows
apart from the load generator's and the services'.
"""

import argparse
import asyncio
import collections
import contextlib
import signal
import time
from pathlib import Path

CHUNK = 256 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy `reader` to `writer`, each chunk written `delay_s` after it was read."""
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    arrived = asyncio.Event()
    ended = False

    async def send() -> None:
        while held or not ended:
            if not held:
                arrived.clear()
                await arrived.wait()
                continue
            due, data = held[0]
            wait_s = due - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            held.popleft()
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(CHUNK):
            held.append((time.monotonic() + delay_s, data))
            arrived.set()
    except ConnectionError:
        pass
    finally:
        ended = True
        arrived.set()
        with contextlib.suppress(ConnectionError):
            await sender
            writer.write_eof()


async def _serve(upstream: str, delay_s: float, port_file: Path) -> None:
    host, port = upstream.rsplit(":", 1)

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return
        for w in (client_w, up_w):
            sock = w.get_extra_info("socket")
            sock.setsockopt(6, 1, 1)  # TCP_NODELAY: the delay is ours, not Nagle's
        await asyncio.gather(
            _pipe(client_r, up_w, delay_s), _pipe(up_r, client_w, delay_s), return_exceptions=True
        )
        for w in (client_w, up_w):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_file.write_text(str(server.sockets[0].getsockname()[1]))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="host:port to forward to")
    parser.add_argument("--delay-ms", type=float, default=15.0, help="added in each direction")
    parser.add_argument("--port-file", type=Path, required=True, help="where to write the port")
    args = parser.parse_args()
    asyncio.run(_serve(args.upstream, args.delay_ms / 1000, args.port_file))


if __name__ == "__main__":
    main()
