"""Scenarios on the shared ride store: a backend lost with rides waiting, Firestore down a while."""

import time

import requests

from backend_service.firestore_rides import REPUBLISH_AFTER_S
from devstack.lab import Lab, kill, resume, stall
from devstack.load import REPOST_AFTER_S, Rider, run_load
from devstack.processes import http_status

from .observe import open_at, tap, time_until, urls
from .report import ScenarioResult

# The bound docs/reliability.md states for a ride whose backend died: done on any other backend
# within this long of the death. A ride it had published is recorded from the shared
# subscription as soon as its result exists; one it had taken but not yet published is
# published again by the next confirmation after REPUBLISH_AFTER_S (the rider confirms again
# every 12 s while a ride stays pending).
DONE_ELSEWHERE_WITHIN_S = REPUBLISH_AFTER_S + REPOST_AFTER_S + 5.0
PROMPT_S = 5.0


def backend_killed_shared(lab: Lab, rides: int = 40, rate_per_s: float = 10) -> ScenarioResult:
    """SIGKILL one of two backends while its rides wait: the other answers each one, done."""
    result = ScenarioResult("backend SIGKILL while rides wait, rides shared in Firestore")
    firestore = lab.own_firestore()
    stack = lab.stack("shared-kill", backends=2, ride_store="firestore", firestore=firestore)
    victim, survivor = stack.backends
    with tap(stack) as results:
        load = run_load(Rider(urls(stack)), lab.rides("sk", rides), rate_per_s, deadline_s=60)
        time.sleep(1.0)
        stall(stack.predictor)  # rides pile up waiting in both backends
        time.sleep(1.5)
        killed_at = time.monotonic()
        kill(victim)
        resume(stack.predictor)
        outcomes = load.wait()
    result.count(outcomes, results.duplicates)
    orphans = [o for o in outcomes if open_at(o, victim.url, killed_at)]
    by_survivor = [o for o in orphans if o.answered_by == survivor.url]
    after_kill = sorted(o.answered_at - killed_at for o in orphans if o.answered_at)
    late = after_kill[-1] if after_kill else 0.0
    prompt = sum(s < PROMPT_S for s in after_kill)
    result.checks["every ride waiting on the killed backend answered by the other"] = (
        len(by_survivor) == len(orphans) > 0
    )
    result.checks[f"each done within {DONE_ELSEWHERE_WITHIN_S:g} s of the kill"] = (
        late < DONE_ELSEWHERE_WITHIN_S
    )
    result.figures = {"orphans": len(orphans), "last_done_after_kill_s": late}
    result.notes += [
        f"{len(orphans)} rides waited on the killed backend; {prompt} were done on the other "
        f"within {PROMPT_S:g} s of the kill, the last {late:.1f} s after it",
        f"{results.duplicates} duplicate results on the stream",
    ]
    return result


def store_restarted(
    lab: Lab, seconds: float = 20, rate_per_s: float = 10, down_s: float = 5
) -> ScenarioResult:
    """Stop the Firestore emulator under load and start it again: clear answers, nothing lost."""
    result = ScenarioResult(f"Firestore stopped for {down_s:g} s under load, then restarted")
    firestore = lab.own_firestore()
    stack = lab.stack("store-down", backends=2, ride_store="firestore", firestore=firestore)
    backend = stack.backends[0]
    down: dict[str, list[int | None]] = {"POST /rides": [], "GET /rides": [], "/readyz": []}
    reasons: list[str] = []
    with tap(stack) as results:
        load = run_load(
            Rider(urls(stack)), lab.rides("sd", int(seconds * rate_per_s)), rate_per_s,
            deadline_s=seconds + 60,
        )  # fmt: skip
        time.sleep(seconds / 4)
        kept = lab.rides("kept", 1)[0]
        before = requests.post(f"{backend.url}/rides", json=kept.body, timeout=10)
        time.sleep(1.0)  # for the recorder to write its result
        firestore.stop()
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < down_s:
            body = lab.rides("probe", 1)[0].body
            posted = requests.post(f"{backend.url}/rides", json=body, timeout=10)
            down["POST /rides"].append(posted.status_code)
            if posted.status_code == 503 and "duration_coarse" not in posted.json():
                down["POST /rides"].append(-1)  # a 503 without the coarse figure is unclear
            down["GET /rides"].append(http_status(f"{backend.url}/rides/{body['ride_id']}"))
            ready = requests.get(f"{backend.url}/readyz", timeout=10)
            down["/readyz"].append(ready.status_code)
            reasons.append(ready.json().get("reason", ""))
            time.sleep(0.5)
        firestore.start()
        restarted_at = time.monotonic()
        outcomes = load.wait()
    result.count(outcomes, results.duplicates)
    result.checks["POST /rides answered 503 with the coarse figure while down"] = set(
        down["POST /rides"]
    ) == {503}
    result.checks["GET /rides answered 503 while down"] = set(down["GET /rides"]) == {503}
    result.checks["/readyz 503 and said why while down"] = set(down["/readyz"]) == {503} and all(
        "ride store unavailable" in r for r in reasons
    )
    ready = time_until(lambda: http_status(f"{backend.url}/readyz") == 200, 30)
    ready_again = None if ready is None else time.monotonic() - restarted_at
    result.checks["ready again after the restart"] = ready_again is not None
    after = requests.get(f"{stack.backends[1].url}/rides/{kept.ride_id}", timeout=10)
    result.checks["a ride done before the stop is still done after it"] = (
        before.status_code == 200 and after.status_code == 200 and after.json() == before.json()
    )
    result.notes += [
        f"while down: POST {_counts(down['POST /rides'])}, GET {_counts(down['GET /rides'])}, "
        f"/readyz {_counts(down['/readyz'])}",
        f"ready again {ready_again or 0:.1f} s after the restart",
        f"{sum(o.attempts[0].status == 503 for o in outcomes if o.attempts)} rides answered 503 "
        "at first, confirmed again by the rider",
    ]
    return result


def _counts(codes: list[int | None]) -> str:
    return ", ".join(f"{code}x{codes.count(code)}" for code in sorted(set(codes), key=str))
