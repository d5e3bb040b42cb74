"""A push endpoint that does nothing: what the emulator alone costs a delivery.

`python -m bench.noop PORT` answers every POST with 204 at once and records, for each
delivery, the time since the publisher stamped the message (`{"sent": unix seconds}` in its
data). GET /stats returns and clears what it recorded.
"""

import asyncio
import base64
import json
import sys
import time

_recorded: list[float] = []


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            arrived = time.time()
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            if lines[0].startswith("GET /stats"):
                payload = json.dumps({"latencies_ms": _recorded}).encode()
                _recorded.clear()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
            else:
                _record(body, arrived)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _record(body: bytes, arrived: float) -> None:
    try:
        data = json.loads(base64.b64decode(json.loads(body)["message"]["data"]))
        _recorded.append((arrived - float(data["sent"])) * 1000)
    except (ValueError, KeyError, TypeError):
        pass  # not a stamped message: acked all the same


async def main(port: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
