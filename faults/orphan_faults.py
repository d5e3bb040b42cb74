"""A backend killed with rides waiting, then lookups only: the recorder alone must finish them.

Two backends share rides in Firestore; the victim dies with rides waiting on it, and from then on
only `GET /rides/<id>` on the survivor. Through the fault proxy, the emulator sees a dead
client's stream end as Pub/Sub sees a lost connection; straight at it, the stream is cut, which
the emulator mishandles. docs/reliability.md ("A killed instance, then lookups only") has more.
"""

import threading
import time
from typing import Any

import requests

from devstack.lab import Lab, kill, resume, stall
from devstack.pubsub import RECORDER_ACK_DEADLINE_S

from .observe import tap, time_until
from .report import ScenarioResult

# The bound: a result reaches a live recorder within the recorder subscription's ack deadline
# (a dead stream's lease lapses by then), and is written within a few seconds more.
DONE_WITHIN_S = RECORDER_ACK_DEADLINE_S + 5.0
POLL_S = 0.5


def backend_killed_lookups(
    lab: Lab, rides: int = 12, through_proxy: bool = True, watch_s: float = 90.0
) -> ScenarioResult:
    how = "through the fault proxy" if through_proxy else "straight at the emulator"
    result = ScenarioResult(f"backend SIGKILL with {rides} rides waiting, then lookups ({how})")
    firestore = lab.own_firestore()
    options: dict[str, Any] = {"backends": 2, "ride_store": "firestore", "firestore": firestore}
    if through_proxy:
        stack, _ = lab.proxied_stack("orphans-proxied", proxied=("backend_service",), **options)
    else:
        stack = lab.stack("orphans-direct", **options)
    victim, survivor = stack.backends
    batch = lab.rides("orphan", rides)
    with tap(stack) as results:
        stall(stack.predictor)
        for ride in batch:  # each waits on the victim until it dies
            post = lambda body=ride.body: _post(f"{victim.url}/rides", body)  # noqa: E731
            threading.Thread(target=post, daemon=True).start()
        taken = time_until(lambda: all(_status(survivor.url, r.ride_id) for r in batch), 10)
        time.sleep(0.5)  # each publish follows its document
        kill(victim)
        resume(stack.predictor)
        resumed_at = time.monotonic()
        done_after: dict[str, float] = {}
        while len(done_after) < rides and time.monotonic() - resumed_at < watch_s:
            for ride in batch:
                if ride.ride_id not in done_after:
                    status = _status(survivor.url, ride.ride_id)
                    if status and status.get("status") == "done":
                        done_after[ride.ride_id] = time.monotonic() - resumed_at
                        right = abs(status["duration_final"] - ride.expected) < 1e-6
                        result.crossed += not right
            time.sleep(POLL_S)
        published_after = {r: t - resumed_at for r, t in results.first_seen.items()}
    pending = [r.ride_id for r in batch if r.ride_id not in done_after]
    unpublished = [r for r in pending if r not in published_after]
    result.sent, result.delivered = rides, len(done_after)
    last = max(done_after.values(), default=0.0)
    result.worst_latency_s = last
    result.checks["every ride taken by the victim before the kill"] = taken is not None
    result.checks["every ride done on the survivor, lookups only"] = not pending
    result.checks[f"each done within {DONE_WITHIN_S:g} s of the resume"] = last < DONE_WITHIN_S
    result.checks["every answer the ride's own"] = result.crossed == 0
    result.figures = {
        "done": len(done_after),
        "last_done_after_resume_s": round(last, 1),
        "pending_result_never_published": len(unpublished),
        "pending_result_published_not_recorded": len(pending) - len(unpublished),
    }
    times = sorted(round(s, 1) for s in done_after.values())
    result.notes += [
        f"{len(done_after)}/{rides} done on the survivor; seconds after the resume: {times}",
        "results first published (tap) at "
        f"{sorted(round(s, 1) for s in published_after.values())} s after the resume",
        f"still pending: {len(unpublished)} whose result was never published (the predictor's "
        f"side), {len(pending) - len(unpublished)} whose result was published and not recorded "
        "(held in the recorder subscription)",
    ]
    return result


def _post(url: str, body: dict) -> None:
    try:
        requests.post(url, json=body, timeout=30)
    except requests.RequestException:  # the backend was killed under it, as intended
        pass


def _status(url: str, ride_id: str) -> dict | None:
    """The ride's JSON from GET /rides/<id>, or None if absent or not answered."""
    try:
        answer = requests.get(f"{url}/rides/{ride_id}", timeout=5)
    except requests.RequestException:
        return None
    return answer.json() if answer.status_code == 200 else None
