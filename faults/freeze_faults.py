"""A backend worker frozen between requests, as Cloud Run's request-based billing freezes it."""

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from backend_service.config import Config as BackendConfig
from devstack.lab import Lab, restart
from devstack.load import HTTP_TIMEOUT_S, Attempt, Outcome, Ride, Rider
from devstack.processes import process_tree
from devstack.proxy import TcpProxy
from devstack.stack import Service

from .observe import tap
from .report import ScenarioResult

log = logging.getLogger("faults")
RESULT_TIMEOUT_S = BackendConfig.result_timeout_s  # how long POST /rides waits for its result
CUT_AFTER_S = 2.0  # into the freeze: the connections are lost while the worker cannot notice


def backend_frozen(lab: Lab) -> ScenarioResult:
    """Freeze the worker 60 s with its connections lost meanwhile, resume, confirm rides."""
    return frozen(lab, freeze_s=60.0)


def frozen(
    lab: Lab, freeze_s: float, cut: bool = True, reset: bool = False, rides: int = 8
) -> ScenarioResult:
    """SIGSTOP the backend's worker for `freeze_s`, SIGCONT it as a ride arrives, confirm more.

    With `cut`, the backend talks to Pub/Sub through a proxy that loses its connections during
    the freeze: the client side black-holed (or reset), the server side of each stream ended.
    """
    mode = ("reset" if reset else "cut") if cut else "bare"
    how = {"reset": "connections reset", "cut": "connections lost", "bare": "bare emulator"}[mode]
    how += " meanwhile" if cut else ""
    result = ScenarioResult(f"backend worker frozen {freeze_s:g} s between requests, {how}")
    stack = lab.stack(f"frozen-{freeze_s:g}-{mode}")
    backend = stack.backends[0]
    before, after = lab.rides("fz-before", 2), lab.rides("fz-after", rides)
    with TcpProxy(stack.address, follow_streams=True) as proxy, tap(stack) as results:
        if cut:
            behind(proxy, backend)
        warm = [confirm(backend.url, ride) for ride in before]
        result.checks["answered 200 before the freeze"] = all(o.final for o in warm)
        worker = worker_pid(backend)
        first: list[Outcome] = []
        sender = threading.Thread(target=lambda: first.append(confirm(backend.url, after[0])))
        os.kill(worker, signal.SIGSTOP)
        try:
            time.sleep(CUT_AFTER_S)
            lost = proxy.cut(reset) if cut else (0, 0)
            time.sleep(freeze_s - CUT_AFTER_S)
            # The ride that wakes the instance: sent to the frozen worker, which the platform
            # resumes because a request came.
            sender.start()
            time.sleep(0.2)
        finally:
            os.kill(worker, signal.SIGCONT)
        resumed = time.monotonic()
        sender.join(timeout=HTTP_TIMEOUT_S + 5)
        with ThreadPoolExecutor(max_workers=len(after)) as pool:
            rest = list(pool.map(lambda ride: confirm(backend.url, ride), after[1:]))
        outcomes = first + rest
        ready = requests.get(f"{backend.url}/readyz", timeout=HTTP_TIMEOUT_S).status_code
    result.count(warm + outcomes, results.duplicates)
    # Until its answer came back, whatever it was: a 503 or a 202 counts as much as a 200.
    first_s = first[0].attempts[0].sent + first[0].attempts[0].seconds - resumed if first else 99.0
    statuses = [a.status for o in outcomes for a in o.attempts]
    first_status = first[0].attempts[0].status if first else "none"
    result.checks["first ride after the resume answered 200 with its duration_final"] = bool(
        first and first[0].final is not None and not first[0].crossed
    )
    result.checks["every ride after the resume answered 200 with its own duration_final"] = all(
        o.final is not None and not o.crossed for o in outcomes
    )
    result.checks["ready after the resume"] = ready == 200
    result.figures = {"first_after_resume_s": first_s, "freeze_s": freeze_s}
    log_text = backend.process.log_path.read_text(errors="replace")
    cut_note = f"; {lost[0]} connections and {lost[1]} streams lost at {CUT_AFTER_S:g} s"
    result.notes += [
        f"worker {worker} frozen {freeze_s:g} s{cut_note if cut else ''}",
        f"first confirmation after the resume: {first_status} in {first_s:.2f} s",
        f"after the resume: {statuses.count(200)}/{len(statuses)} answered 200",
        f"freezes the listener noticed: {log_text.count('silent across a freeze')}",
    ]
    return result


def behind(proxy: TcpProxy, service: Service) -> None:
    """Restart `service` talking to Pub/Sub through `proxy`; the predictor stays direct."""
    service.stop()
    service.process.env = service.process.env | {"PUBSUB_EMULATOR_HOST": proxy.address}
    restart(service)


def worker_pid(service: Service) -> int:
    """The PID of the service's one gunicorn worker (not the master, which Cloud Run spares)."""
    assert service.process.pid is not None
    workers = [pid for pid in process_tree(service.process.pid) if pid != service.process.pid]
    if len(workers) != 1:
        raise RuntimeError(f"expected one worker under {service.process.pid}, found {workers}")
    return workers[0]


def confirm(url: str, ride: Ride) -> Outcome:
    """POST the ride once, as the request that must get its answer; record what came back."""
    out = Outcome(ride, started=time.monotonic())
    try:
        response = requests.post(f"{url}/rides", json=ride.body, timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as err:
        out.attempts.append(
            Attempt(url, out.started, time.monotonic() - out.started, type(err).__name__)
        )
        return out
    out.attempts.append(
        Attempt(url, out.started, time.monotonic() - out.started, response.status_code)
    )
    if response.status_code == 200 and response.json().get("duration_final") is not None:
        Rider.settle(out, url, response.json())
    return out
