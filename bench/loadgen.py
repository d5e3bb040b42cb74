"""Open-loop load: send requests on a fixed schedule and time each from its scheduled moment.

A closed-loop client slows down with the server and hides a backlog (coordinated omission);
this one keeps the schedule, opens more keep-alive connections when answers are late, and
counts the time a request waited for the client as part of its latency.
"""

import asyncio
import json
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_CONNECTIONS = 256  # per target; past that, requests queue in the client (and it shows)
IDLE_REUSE_S = 1.0  # gunicorn closes idle keep-alive connections after 2 s
START_DELAY_S = 0.05  # the first request is due this long after the run starts


@dataclass
class Outcome:
    index: int
    scheduled_s: float  # since the run started
    latency_ms: float  # answer time minus scheduled time
    status: int
    body: bytes
    send_lag_ms: float  # how late the client sent it


@dataclass
class OpenLoopResult:
    rate: float
    duration_s: float
    outcomes: list[Outcome]
    errors: list[str] = field(default_factory=list)
    client_cpu_cores: float = 0.0
    max_connections: int = 0


class _Pool:
    """Keep-alive HTTP/1.1 connections to one host, opened on demand."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def request(
        self, method: str, path: str, body: bytes, timeout_s: float
    ) -> tuple[int, bytes]:
        async with self._slots:
            for attempt in range(2):
                reader, writer, reused = await self._connection()
                try:
                    status, payload, keep = await asyncio.wait_for(
                        self._exchange(reader, writer, method, path, body), timeout_s
                    )
                except (ConnectionError, asyncio.IncompleteReadError) as err:
                    writer.close()
                    # A reused connection the server had just closed: send again on a new one.
                    if reused and attempt == 0:
                        continue
                    raise ConnectionError(str(err)) from err
                except BaseException:
                    writer.close()
                    raise
                if keep:
                    self._idle.append((time.monotonic(), reader, writer))
                else:
                    writer.close()
                return status, payload
        raise ConnectionError("unreachable")

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while self._idle:
            since, reader, writer = self._idle.pop()
            if time.monotonic() - since < IDLE_REUSE_S and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return reader, writer, False

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        body: bytes,
    ) -> tuple[int, bytes, bool]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)
        }
        payload = await reader.readexactly(int(headers.get("content-length", "0")))
        return status, payload, headers.get("connection", "").lower() != "close"

    def close(self) -> None:
        for _, _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _run(
    urls: Sequence[str],
    path: str,
    body: Callable[[int], bytes],
    rate: float,
    duration_s: float,
    timeout_s: float,
    progress: Callable[[str], None],
) -> OpenLoopResult:
    pools = [_Pool(url) for url in urls]
    total = int(rate * duration_s)
    outcomes: list[Outcome] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + START_DELAY_S

    async def one(index: int, due: float) -> None:
        sent = loop.time()
        try:
            status, payload = await pools[index % len(pools)].request(
                "POST", path, body(index), timeout_s
            )
        except Exception as err:  # one failed request is counted, never fatal to the run
            errors.append(f"{index}: {type(err).__name__}: {err}")
            return
        outcomes.append(
            Outcome(
                index, due - start, (loop.time() - due) * 1000, status, payload, (sent - due) * 1000
            )
        )

    tasks = []
    next_report = start + 5
    for index in range(total):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(index, due)))
        if loop.time() >= next_report:
            progress(f"  {index}/{total} sent, {len(outcomes)} answered, {len(errors)} errors")
            next_report += 5
    await asyncio.wait(tasks, timeout=timeout_s + 5) if tasks else None
    for pool in pools:
        pool.close()
    return OpenLoopResult(
        rate, duration_s, outcomes, errors, max_connections=max(p.opened for p in pools)
    )


def run(
    urls: Sequence[str],
    path: str,
    body: Callable[[int], bytes],
    *,
    rate: float,
    duration_s: float,
    timeout_s: float = 15.0,
    progress: Callable[[str], None] = lambda _: None,
) -> OpenLoopResult:
    """Send `rate` requests a second for `duration_s`, round-robin over `urls`, body(i) each."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    result = asyncio.run(_run(urls, path, body, rate, duration_s, timeout_s, progress))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    result.client_cpu_cores = cpu / max(time.monotonic() - started, 1e-9)
    return result


def decode(outcome: Outcome) -> dict[str, object]:
    """Return the JSON body of an answer, or {} if it is not JSON."""
    try:
        doc = json.loads(outcome.body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
