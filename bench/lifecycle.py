"""Process start to ready, memory once warm, and the time to exit after SIGTERM."""

import math
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from devstack.lab import terminate
from devstack.measure import tree_pss_mb
from devstack.stack import Service

READY_TIMEOUT_S = 120.0
POLL_S = 0.005


def start_timed(service: Service) -> float:
    """Start `service` and return the seconds from process start to /readyz 200."""
    started = time.monotonic()
    service.start(wait=False)
    try:
        service.wait_ready(READY_TIMEOUT_S, interval_s=POLL_S)
    except TimeoutError:
        service.stop()
        raise
    return time.monotonic() - started


def first_push_timed(service: Service, body: bytes) -> float:
    """Start `service`; return the seconds from process start to its first answered push.

    The push is sent as soon as the port takes connections (again every POLL_S while it refuses
    them): gunicorn's master binds first, and the connection waits until the worker has loaded
    the model and answers, as a push that wakes a Cloud Run instance does.
    """
    started = time.monotonic()
    service.start(wait=False)
    while time.monotonic() - started < READY_TIMEOUT_S:
        if not service.process.alive():
            raise RuntimeError(f"{service.package} exited:\n{service.process.log_tail()}")
        status = post_many(service.url + "/", [body], READY_TIMEOUT_S)[0]
        if 200 <= status < 300:
            return time.monotonic() - started
        if status != 0:  # answered, but not as a ride is: the measurement means nothing
            service.stop()
            raise RuntimeError(f"the first push was answered {status}")
        time.sleep(POLL_S)
    service.stop()
    raise TimeoutError(f"no push answered within {READY_TIMEOUT_S:g} s")


def post_many(url: str, bodies: list[bytes], timeout_s: float = 10.0) -> list[int]:
    """POST each body in turn and return the status codes."""
    statuses = []
    for body in bodies:
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                statuses.append(response.status)
        except OSError as err:
            statuses.append(getattr(err, "code", 0) or 0)
    return statuses


def pss(service: Service) -> dict[str, float]:
    """PSS of the gunicorn master and its workers, in MB."""
    return tree_pss_mb(service.process.pid or 0)


def sigterm_exit_s(service: Service) -> float | None:
    """SIGTERM to the master only, as Cloud Run sends it: seconds until gone (None: killed)."""
    seconds = terminate(service)
    return None if math.isinf(seconds) else seconds


def sigterm_under_load(
    service: Service, load: Callable[[], Any], after_s: float = 3.0
) -> tuple[float | None, Any]:
    """Run `load` in a thread, SIGTERM the service `after_s` into it; return exit s and result."""
    box: dict[str, Any] = {}

    def drive() -> None:
        try:
            box["result"] = load()
        except Exception as err:  # the load meeting a closed port is part of what is measured
            box["result"] = {"error": f"{type(err).__name__}: {err}"}

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    time.sleep(after_s)
    exit_s = sigterm_exit_s(service)
    thread.join(timeout=60)
    return exit_s, box.get("result")
