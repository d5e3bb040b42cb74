"""The lab's load: an open-loop generator (benchmarks) and a rider (drills), one schedule.

`run` keeps a fixed schedule, opening more keep-alive connections when answers are late, and
times each request from its due moment, so a backlog shows instead of slowing the client
(coordinated omission). `Rider` drives one ride to its final duration as a patient rider app
would; `run_load` confirms rides at a steady rate with it.
"""

import asyncio
import json
import random
import resource
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

MAX_CONNECTIONS = 256  # per target; past that, requests queue in the client (and it shows)
IDLE_REUSE_S = 1.0  # gunicorn closes idle keep-alive connections after 2 s
START_DELAY_S = 0.05  # the first request is due this long after the run starts


@dataclass
class Answer:
    """One request of an open-loop run: when it was due, how long it took, what came back."""

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
    outcomes: list[Answer]
    errors: list[str] = field(default_factory=list)
    client_cpu_cores: float = 0.0
    max_connections: int = 0


class _Pool:
    """Keep-alive HTTP/1.1 connections to one host, opened on demand, for JSON POSTs."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def post(self, path: str, body: bytes, timeout_s: float) -> tuple[int, bytes]:
        async with self._slots:
            for attempt in range(2):
                reader, writer, reused = await self._connection()
                try:
                    status, payload, keep = await asyncio.wait_for(
                        self._exchange(reader, writer, path, body), timeout_s
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
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes
    ) -> tuple[int, bytes, bool]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
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
    outcomes: list[Answer] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + START_DELAY_S

    async def one(index: int, due: float) -> None:
        sent = loop.time()
        try:
            status, payload = await pools[index % len(pools)].post(path, body(index), timeout_s)
        except Exception as err:  # one failed request is counted, never fatal to the run
            errors.append(f"{index}: {type(err).__name__}: {err}")
            return
        latency_ms = (loop.time() - due) * 1000
        outcomes.append(
            Answer(index, due - start, latency_ms, status, payload, (sent - due) * 1000)
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


def decode(outcome: Answer) -> dict[str, object]:
    """Return the JSON body of an answer, or {} if it is not JSON."""
    try:
        doc = json.loads(outcome.body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


HTTP_TIMEOUT_S = 30
POLL_S = 0.5
# Retries back off exponentially with jitter, as a client should: 0.5 s doubling up to 4 s.
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 4.0
MATCH_TOLERANCE = 0.015
REPOST_AFTER_S = 12.0  # a patient client confirms a pending ride again this often


@dataclass
class Ride:
    ride_id: str
    body: dict[str, Any]
    expected: float  # what the model must answer for this ride


@dataclass(frozen=True)
class Attempt:
    """One POST /rides: where, when, for how long, and what came back (a status or an error)."""

    url: str
    sent: float
    seconds: float
    status: int | str  # "refused" before the request was taken, "broken" if it died mid-way


@dataclass
class Outcome:
    """Everything one ride went through, from the first POST to its final duration."""

    ride: Ride
    started: float = 0.0
    answered_at: float | None = None
    final: float | None = None
    answered_by: str | None = None
    crossed: bool = False
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def latency_s(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.started


def make_rides(prefix: str, count: int, expected_of) -> list[Ride]:  # type: ignore[no-untyped-def]
    """Rides with distinct distances, so a result given to the wrong ride shows."""
    tag = uuid.uuid4().hex[:6]
    rides = []
    for i in range(count):
        ride_id = f"{prefix}-{tag}-{i:05d}"
        body = {
            "ride_id": ride_id,
            "PULocationID": 1 + (i * 37) % 265,
            "DOLocationID": 1 + (i * 91) % 265,
            "trip_distance": round(0.3 + (i * 0.731) % 40, 2),
            "datetime": f"2021-02-{1 + i % 28:02d}T{i % 24:02d}:{(i * 7) % 60:02d}:00",
        }
        rides.append(Ride(ride_id, body, expected_of(body)))
    return rides


def backoff(attempts: int, jitter: random.Random) -> float:
    """Seconds to wait before the next try, after `attempts` failed ones."""
    return min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempts - 1)) * jitter.uniform(0.5, 1.0)


class Rider:
    """Drive one ride to its final duration across backends, as a patient client would.

    On 200 it is done; on 202 it polls the backend that answered and, after `repost_after_s`,
    confirms again with the same ride_id (which re-publishes a pending ride); on 503 or a
    refused connection it backs off and tries again, on the next backend after a connection
    error.
    """

    def __init__(
        self, backends: list[str], repost_after_s: float = REPOST_AFTER_S, keep_alive: bool = False
    ) -> None:
        """With `keep_alive`, each thread reuses its connections, as a busy client app would.

        Off by default: drills that kill a backend tell a refused connection from a broken one.
        """
        self.backends = backends
        self.repost_after_s = repost_after_s
        self._keep_alive = keep_alive
        self._local = threading.local()

    def _http(self) -> Any:
        """The `requests` module, or this thread's session when connections are kept alive."""
        if not self._keep_alive:
            return requests
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def drive(self, ride: Ride, first: int, deadline: float, out: Outcome | None = None) -> Outcome:
        """Confirm `ride` until it has its final duration or `deadline` passes.

        `out`, when given, holds what happened to the ride so far; the drive goes on from it.
        """
        out = out or Outcome(ride, started=time.monotonic())
        index = first
        jitter = random.Random(ride.ride_id)
        while time.monotonic() < deadline and out.final is None:
            url = self.backends[index % len(self.backends)]
            sent = time.monotonic()
            try:
                response = self._http().post(f"{url}/rides", json=ride.body, timeout=HTTP_TIMEOUT_S)
            except requests.RequestException as err:
                refused = isinstance(err, requests.ConnectionError) and "refused" in str(err)
                status = "refused" if refused else "broken"
                out.attempts.append(Attempt(url, sent, time.monotonic() - sent, status))
                index += 1
                time.sleep(backoff(len(out.attempts), jitter))
                continue
            out.attempts.append(Attempt(url, sent, time.monotonic() - sent, response.status_code))
            if response.status_code == 200:
                self.settle(out, url, response.json())
            elif response.status_code == 202:
                self._poll(out, url, min(deadline, time.monotonic() + self.repost_after_s))
            else:
                time.sleep(backoff(len(out.attempts), jitter))
        return out

    def _poll(self, out: Outcome, url: str, until: float) -> None:
        while time.monotonic() < until:
            time.sleep(POLL_S)
            try:
                response = self._http().get(
                    f"{url}/rides/{out.ride.ride_id}", timeout=HTTP_TIMEOUT_S
                )
            except requests.RequestException:
                return
            if response.status_code != 200:
                return
            body = response.json()
            if body.get("status") == "done":
                self.settle(out, url, body)
                return

    @staticmethod
    def settle(out: Outcome, url: str, body: dict[str, Any]) -> None:
        out.answered_at, out.answered_by = time.monotonic(), url
        out.final = float(body["duration_final"])
        # The predictor rounds to 0.01 min; rides differ by far more, so a swap shows.
        wrong_value = abs(out.final - out.ride.expected) > MATCH_TOLERANCE
        out.crossed = body.get("ride_id") != out.ride.ride_id or wrong_value


class LoadRun:
    """Confirm `rides` at a steady rate in a thread of its own; `wait` collects the outcomes.

    With `open_loop`, each ride's first POST is sent by `run`: a thread per ride cannot keep up
    hundreds of rides a second on a small machine; then only the rides it did not settle (202,
    503, a broken connection) are driven on by `rider`'s threads.
    """

    def __init__(
        self,
        rider: "Rider",
        rides: list[Ride],
        rate_per_s: float,
        deadline_s: float,
        workers: int = 64,
        open_loop: bool = False,
    ) -> None:
        self.started = time.monotonic()
        self._deadline = self.started + deadline_s
        self._outcomes: list[Outcome] = []
        self._error: BaseException | None = None
        args = (rider, rides, rate_per_s, workers, open_loop)
        self._thread = threading.Thread(target=self._run, args=args, daemon=True)
        self._thread.start()

    def _run(
        self, rider: "Rider", rides: list[Ride], rate: float, workers: int, open_loop: bool
    ) -> None:
        try:
            todo: list[tuple[int, Ride, Outcome | None]] = [
                (i, r, None) for i, r in enumerate(rides)
            ]
            if open_loop:  # timed from when the open-loop client had them due
                origin = self.started + START_DELAY_S
                outcomes = [Outcome(r, started=origin + i / rate) for i, r in enumerate(rides)]
                self._first_posts(rider, rides, rate, outcomes)
                todo = [(i, o.ride, o) for i, o in enumerate(outcomes) if o.final is None]
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rider") as pool:
                futures = []
                for i, ride, out in todo:
                    if (pause := self.started + i / rate - time.monotonic()) > 0:
                        time.sleep(pause)
                    futures.append(pool.submit(rider.drive, ride, i, self._deadline, out))
                driven = [
                    f.result(timeout=max(0.0, self._deadline - time.monotonic()) + 60)
                    for f in futures
                ]
            self._outcomes = outcomes if open_loop else driven
        except BaseException as err:  # handed to wait(), which raises it
            self._error = err

    def _first_posts(
        self, rider: "Rider", rides: list[Ride], rate: float, outcomes: list[Outcome]
    ) -> None:
        bodies = [json.dumps(ride.body).encode() for ride in rides]
        first = run(
            rider.backends, "/rides", bodies.__getitem__, rate=rate,
            duration_s=len(rides) / rate, timeout_s=HTTP_TIMEOUT_S,
        )  # fmt: skip
        for answer in first.outcomes:
            out = outcomes[answer.index]
            url = rider.backends[answer.index % len(rider.backends)]
            sent = out.started + answer.send_lag_ms / 1000
            seconds = out.started + answer.latency_ms / 1000 - sent
            out.attempts.append(Attempt(url, sent, seconds, answer.status))
            if answer.status == 200:
                rider.settle(out, url, json.loads(answer.body))
                out.answered_at = sent + seconds

    def wait(self) -> list[Outcome]:
        """Return every ride's outcome once each is answered or the deadline has passed."""
        self._thread.join(timeout=max(0.0, self._deadline - time.monotonic()) + 90)
        if self._error is not None:
            raise self._error
        return self._outcomes


run_load = LoadRun  # `run_load(rider, rides, rate_per_s, deadline_s).wait()`


class EstimateProbe:
    """Ask for coarse estimates at a steady rate in the background, recording status and time."""

    def __init__(self, url: str, body: dict[str, Any], rate_per_s: float = 5.0) -> None:
        self.samples: list[tuple[float, int | str, float]] = []  # (sent, status, seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(url, body, 1 / rate_per_s), daemon=True
        )
        self._thread.start()

    def _run(self, url: str, body: dict[str, Any], period_s: float) -> None:
        while not self._stop.wait(period_s):
            sent = time.monotonic()
            try:
                status: int | str = requests.post(
                    f"{url}/estimate", json=body, timeout=HTTP_TIMEOUT_S
                ).status_code
            except requests.RequestException as err:
                status = type(err).__name__
            self.samples.append((sent, status, time.monotonic() - sent))

    def stop(self) -> list[tuple[float, int | str, float]]:
        self._stop.set()
        self._thread.join(timeout=HTTP_TIMEOUT_S + 5)
        return self.samples


def double_answers(outcomes: list[Outcome]) -> int:
    """Ask each answering backend again: count rides whose final duration has changed since."""
    changed = 0
    for out in outcomes:
        if out.final is None or out.answered_by is None:
            continue
        url = f"{out.answered_by}/rides/{out.ride.ride_id}"
        try:
            response = requests.get(url, timeout=HTTP_TIMEOUT_S)
        except requests.RequestException:
            continue  # that backend is gone; what it answered cannot change any more
        if response.status_code == 200 and response.json().get("duration_final") != out.final:
            changed += 1
    return changed
