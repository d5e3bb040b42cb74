"""Scenarios that kill or stop one service while rides are in flight."""

import time

from backend_service.config import Config as BackendConfig
from devstack.lab import Lab, kill, restart, resume, stall, terminate
from devstack.load import Outcome, Rider, run_load
from devstack.pubsub import subscriptions_of

from .observe import expiration_ttl_s, open_at, own_subscriptions, tap, urls
from .report import ScenarioResult
from .slow_predictor import slow_stack

# Cloud Run sends SIGKILL this long after SIGTERM.
# https://cloud.google.com/run/docs/container-contract#instance-shutdown
CLOUD_RUN_KILL_S = 10.0


def predictor_killed(lab: Lab) -> ScenarioResult:
    """SIGKILL the predictor mid-stream and restart it: Pub/Sub redelivers what it held."""
    result = ScenarioResult("predictor SIGKILL mid-stream, restarted")
    stack = lab.stack("predictor-killed", backends=2)
    with tap(stack) as results:
        load = run_load(Rider(urls(stack)), lab.rides("pk", 80), rate_per_s=16, deadline_s=60)
        time.sleep(2.0)
        killed_at = time.monotonic()
        kill(stack.predictor)
        time.sleep(1.5)  # as long as a new instance takes to come up, give or take
        restart(stack.predictor)
        down_s = time.monotonic() - killed_at
        outcomes = load.wait()
    result.count(outcomes, results.duplicates)
    result.notes.append(f"predictor down {down_s:.1f} s; pushes retried meanwhile")
    return result


def backend_killed(lab: Lab) -> ScenarioResult:
    """SIGKILL one of two backends while its requests wait: the other carries on alone."""
    return _backend_stopped(lab, graceful=False)


def backend_terminated(lab: Lab) -> ScenarioResult:
    """SIGTERM one of two backends while its requests wait: they answer, it exits in time."""
    return _backend_stopped(lab, graceful=True)


def _backend_stopped(lab: Lab, graceful: bool) -> ScenarioResult:
    how = "SIGTERM (graceful)" if graceful else "SIGKILL"
    result = ScenarioResult(f"backend {how} while requests wait, other backend serving")
    stack = lab.stack("backend-" + ("term" if graceful else "kill"), backends=2)
    victim, survivor = stack.backends
    s = stack.settings
    victim_sub = own_subscriptions(stack, victim)[0]
    with tap(stack) as results:
        load = run_load(Rider(urls(stack)), lab.rides("bk", 40), rate_per_s=10, deadline_s=60)
        # Freeze the predictor so that rides pile up waiting in both backends.
        time.sleep(1.0)
        stall(stack.predictor)
        time.sleep(1.5)
        stopped_at = time.monotonic()
        if graceful:
            exit_s = terminate(victim)
        else:
            kill(victim)
            exit_s = time.monotonic() - stopped_at
        time.sleep(max(0.0, 1.5 - exit_s))
        resume(stack.predictor)
        outcomes = load.wait()
    after = subscriptions_of(stack.address, s.project, s.results_topic)
    result.count(outcomes, results.duplicates)
    _check_victim(result, outcomes, victim.url, stopped_at, graceful)
    result.checks["survivor answered every ride it took"] = _clean(outcomes, survivor.url)
    result.notes.append(f"victim gone {exit_s:.1f} s after the signal")
    if graceful:
        result.checks[f"exited within Cloud Run's {CLOUD_RUN_KILL_S:g} s"] = (
            exit_s < CLOUD_RUN_KILL_S
        )
        result.checks["its results subscription deleted"] = victim_sub not in after
    else:
        ttl = expiration_ttl_s(stack.address, victim_sub)
        result.checks["orphaned subscription has an expiration TTL"] = ttl is not None
        result.notes.append(
            f"orphaned subscription left to its {ttl or 0:.0f} s TTL"
            " (the emulator does not apply TTLs)"
        )
    return result


def _check_victim(
    result: ScenarioResult, outcomes: list[Outcome], url: str, stopped_at: float, graceful: bool
) -> None:
    """Count the victim's requests open at the signal, and how they ended."""
    open_then = [a for o in outcomes for a in open_at(o, url, stopped_at)]
    answered = [a for a in open_then if a.status in (200, 202)]
    result.notes.append(f"{len(answered)}/{len(open_then)} requests open at the signal answered")
    if graceful:
        all_answered = len(answered) == len(open_then)
        result.checks["every open request answered (200 or 202, none reset)"] = all_answered
        late = max((a.sent + a.seconds - stopped_at for a in answered), default=0.0)
        # Each waits at most the backend's RESULT_TIMEOUT_S, inside gunicorn's grace period.
        result.checks["open requests answered within RESULT_TIMEOUT_S"] = (
            late < BackendConfig.result_timeout_s + 1.0
        )
        result.notes.append(f"last answered {late:.1f} s after SIGTERM")


def _clean(outcomes: list[Outcome], url: str) -> bool:
    """Whether every request to `url` came back 200 or 202 (nothing refused, reset or 5xx)."""
    return all(a.status in (200, 202) for o in outcomes for a in o.attempts if a.url == url)


def predictor_terminated(lab: Lab) -> ScenarioResult:
    """SIGTERM the predictor mid-prediction: it finishes and acks what it holds, then exits."""
    result = ScenarioResult("predictor SIGTERM (graceful) mid-prediction, restarted")
    # Every prediction takes 1.5 s, so that some are in flight when the signal lands.
    stack = slow_stack(lab, "predictor-term", slow_s=1.5, interval_s=0)
    with tap(stack) as results:
        load = run_load(Rider(urls(stack)), lab.rides("pt", 12), rate_per_s=3, deadline_s=60)
        time.sleep(2.5)
        exit_s = terminate(stack.predictor)
        back_s = restart(stack.predictor)
        outcomes = load.wait()
    result.count(outcomes, results.duplicates)
    result.checks[f"exited within Cloud Run's {CLOUD_RUN_KILL_S:g} s"] = exit_s < CLOUD_RUN_KILL_S
    # A prediction cut off before its ack would be redelivered and answered twice.
    result.checks["nothing redelivered: in-flight pushes finished and acked"] = (
        result.stream_duplicates == 0
    )
    result.notes.append(f"exited {exit_s:.1f} s after SIGTERM, back after {back_s:.1f} s")
    return result
