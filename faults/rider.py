"""The client side of a drill: confirm rides as a rider app would, and record what came back."""

import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

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


def run_load(
    rider: Rider, rides: list[Ride], rate_per_s: float, deadline_s: float, workers: int = 64
) -> "LoadRun":
    """Start confirming `rides` at a steady rate in the background; `LoadRun.wait` collects."""
    return LoadRun(rider, rides, rate_per_s, deadline_s, workers)


class LoadRun:
    """Rides confirmed at a steady rate on a thread pool; collect them with `wait`."""

    def __init__(
        self, rider: Rider, rides: list[Ride], rate_per_s: float, deadline_s: float, workers: int
    ) -> None:
        self.started = time.monotonic()
        self._deadline = self.started + deadline_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rider")
        self._futures: list[Any] = []
        self._thread = threading.Thread(
            target=self._submit, args=(rider, rides, rate_per_s), daemon=True
        )
        self._thread.start()

    def _submit(self, rider: Rider, rides: list[Ride], rate_per_s: float) -> None:
        for i, ride in enumerate(rides):
            pause = self.started + i / rate_per_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._futures.append(self._pool.submit(rider.drive, ride, i, self._deadline))

    def wait(self) -> list[Outcome]:
        """Return every ride's outcome once each is answered or the deadline has passed."""
        self._thread.join(timeout=max(0.0, self._deadline - time.monotonic()) + 5)
        outcomes = [
            f.result(timeout=max(0.0, self._deadline - time.monotonic()) + 60)
            for f in self._futures
        ]
        self._pool.shutdown(wait=True)
        return outcomes


def run_open_loop(
    rider: Rider, rides: list[Ride], rate_per_s: float, deadline_s: float, workers: int = 64
) -> "OpenLoopRun":
    """Like run_load, with each ride's first POST sent by an asyncio open-loop client.

    A thread per ride cannot keep up hundreds of rides a second on a small machine; here the
    first confirmation of every ride goes out on schedule from one event loop, and only the
    rides it did not settle (202, 503, a broken connection) are driven on by `rider`'s threads.
    """
    return OpenLoopRun(rider, rides, rate_per_s, deadline_s, workers)


class OpenLoopRun:
    """First confirmations on schedule from one event loop; follow-ups on a thread pool."""

    def __init__(
        self, rider: Rider, rides: list[Ride], rate_per_s: float, deadline_s: float, workers: int
    ) -> None:
        self.started = time.monotonic()
        self._deadline = self.started + deadline_s
        self._outcomes: list[Outcome] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(rider, rides, rate_per_s, workers), daemon=True
        )
        self._thread.start()

    def _run(self, rider: Rider, rides: list[Ride], rate_per_s: float, workers: int) -> None:
        try:
            self._outcomes = self._confirm(rider, rides, rate_per_s, workers)
        except BaseException as err:  # handed to wait(), which raises it
            self._error = err

    def _confirm(
        self, rider: Rider, rides: list[Ride], rate_per_s: float, workers: int
    ) -> list[Outcome]:
        from bench import loadgen  # the benchmarks' open-loop client

        bodies = [json.dumps(ride.body).encode() for ride in rides]
        first = loadgen.run(
            rider.backends,
            "/rides",
            bodies.__getitem__,
            rate=rate_per_s,
            duration_s=len(rides) / rate_per_s,
            timeout_s=HTTP_TIMEOUT_S,
        )
        origin = self.started + loadgen.START_DELAY_S
        outcomes = [Outcome(ride, started=origin + i / rate_per_s) for i, ride in enumerate(rides)]
        for answer in first.outcomes:
            out = outcomes[answer.index]
            url = rider.backends[answer.index % len(rider.backends)]
            sent = out.started + answer.send_lag_ms / 1000
            seconds = out.started + answer.latency_ms / 1000 - sent
            out.attempts.append(Attempt(url, sent, seconds, answer.status))
            if answer.status == 200:
                rider.settle(out, url, json.loads(answer.body))
                out.answered_at = sent + seconds
        unsettled = [(i, out) for i, out in enumerate(outcomes) if out.final is None]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rider") as pool:
            for future in [
                pool.submit(rider.drive, out.ride, i, self._deadline, out) for i, out in unsettled
            ]:
                future.result(timeout=max(0.0, self._deadline - time.monotonic()) + 60)
        return outcomes

    def wait(self) -> list[Outcome]:
        """Return every ride's outcome once each is answered or the deadline has passed."""
        self._thread.join(timeout=max(0.0, self._deadline - time.monotonic()) + 90)
        if self._error is not None:
            raise self._error
        return self._outcomes


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
        try:
            response = requests.get(
                f"{out.answered_by}/rides/{out.ride.ride_id}", timeout=HTTP_TIMEOUT_S
            )
        except requests.RequestException:
            continue  # that backend is gone; what it answered cannot change any more
        if response.status_code == 200 and response.json().get("duration_final") != out.final:
            changed += 1
    return changed
