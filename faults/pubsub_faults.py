"""Scenarios where Pub/Sub behaves as in GCP, not as the emulator: slow, failing, closing, denying.

The services reach the emulator through `devstack.grpc_proxy`, which injects each fault; the
drill's own tools (provisioning, the result tap) talk to the emulator directly.
"""

import json
import re
import statistics
import time

from grpc import StatusCode as Code

from devstack.lab import Lab
from devstack.load import EstimateProbe, Outcome, Rider, run_load
from devstack.processes import http_status
from devstack.proxy import ProxyProcess
from devstack.pubsub import subscriptions_of
from devstack.stack import Service

from .observe import features, own_subscriptions, tap, time_until, urls
from .report import ScenarioResult

# For the backend to turn unready, or to replace its subscription: its back-off is 5 s at most.
READY_WAIT_S = 20.0
# For it to be ready again once the permission is back: it retries a refused stream every 30 s.
RECOVER_WAIT_S = 45.0


def publish_failing(
    lab: Lab, seconds: float = 30, rate_per_s: float = 10, share: float = 0.2
) -> ScenarioResult:
    """Fail a share of every Publish, before or after it reaches Pub/Sub, for `seconds`."""
    result = ScenarioResult(f"Publish failing {share:.0%} of the time for {seconds:g} s")
    stack, proxy = lab.proxied_stack("publish-failing")
    with tap(stack) as results:
        proxy.fail_publishes(share, Code.UNAVAILABLE, when="either")
        rides = lab.rides("pf", int(seconds * rate_per_s))
        load = run_load(Rider(urls(stack)), rides, rate_per_s, deadline_s=seconds + 45)
        time.sleep(seconds)
        proxy.clear()
        outcomes = load.wait()
    result.count(outcomes, results.duplicates)
    unavailable = [a for o in outcomes for a in o.attempts if a.status == 503]
    # The official clients retry UNAVAILABLE and DEADLINE_EXCEEDED; so must ours, within the
    # publish timeout, rather than hand every transient failure to the rider as a 503.
    result.checks["no /rides answered 503 (transient Publish failures retried)"] = not unavailable
    result.notes += [f"{len(unavailable)} answers 503", counts_note(proxy, "Publish")]
    return result


def streams_closed(
    lab: Lab, seconds: float = 60, every_s: float = 5, rate_per_s: float = 10
) -> ScenarioResult:
    """Close every StreamingPull `every_s` after it opened, as Pub/Sub does, for `seconds`."""
    result = ScenarioResult(f"every stream closed after {every_s:g} s, for {seconds:g} s")
    stack, proxy = lab.proxied_stack("streams-closed")
    with tap(stack) as results:
        proxy.close_streams_after(every_s)
        rides = lab.rides("sc", int(seconds * rate_per_s))
        load = run_load(Rider(urls(stack)), rides, rate_per_s, deadline_s=seconds + 45)
        outcomes = load.wait()
        proxy.clear()
    result.count(outcomes, results.duplicates)
    pending = [o for o in outcomes if o.attempts and o.attempts[0].status != 200]
    closes = proxy.counts().get("StreamingPull", {}).get("closed", 0)
    # A stream reopened after a back-off lives `every_s` from then: count on half the closes.
    result.checks["streams were closed"] = closes >= max(1, int(seconds / every_s / 2))
    # A routine close is not a failure: the listener must reopen at once, not back off, or
    # the confirmations waiting meanwhile run out their RESULT_TIMEOUT_S.
    result.checks["every confirmation answered 200 (closed streams reopened at once)"] = not pending
    result.notes += [
        f"{len(pending)} rides not answered 200 at once",
        f"{stack_log(stack.backends[0]).count('results stream interrupted')} reopenings logged",
        counts_note(proxy, "StreamingPull"),
    ]
    return result


def latency_400(
    lab: Lab, seconds: float = 60, rate_per_s: float = 400, latency_s: float = 0.03
) -> ScenarioResult:
    """Add `latency_s` to every Pub/Sub call of the backends at `rate_per_s` for `seconds`."""
    result = ScenarioResult(
        f"{latency_s * 1000:g} ms on every Pub/Sub call at {rate_per_s:g} rides/s for {seconds:g} s"
    )
    # The backends only: the emulator pushes over two serial connections per subscription, so a
    # slower publish in the predictor's push handler would cap the emulator's push rate, which
    # GCP does not (docs/reliability.md).
    stack, proxy = lab.proxied_stack(
        "latency", proxied=("backend_service",), backends=2, predictor_workers=2
    )
    with tap(stack) as results:
        proxy.set_latency(default_s=latency_s)
        rides = lab.rides("lat", int(seconds * rate_per_s))
        rider = Rider(urls(stack), keep_alive=True)
        load = run_load(rider, rides, rate_per_s, deadline_s=seconds + 60, open_loop=True)
        outcomes = load.wait()
        proxy.clear()
    result.count(outcomes, results.duplicates)
    result.figures = throughput(outcomes, load.started)
    f = result.figures
    result.notes += [
        f"answered {f['answered_per_s']:.0f} rides/s; p50 {f['p50_s'] * 1000:.0f} ms, "
        f"p99 {f['p99_s'] * 1000:.0f} ms",
        f"{sum(o.attempts[0].status != 200 for o in outcomes if o.attempts)} not answered 200 "
        "at once",
        f"{sum(not o.attempts for o in outcomes)} never confirmed (the client fell behind)",
    ]
    return result


def results_permission_denied(
    lab: Lab, denied_s: float = 20, rate_per_s: float = 2
) -> ScenarioResult:
    """Deny the backend its results subscription for `denied_s`, then restore it."""
    result = ScenarioResult(f"PERMISSION_DENIED on the results subscription for {denied_s:g} s")
    stack, proxy = lab.proxied_stack("results-denied")
    backend = stack.backends[0]
    rides = lab.rides("pd", int(denied_s * rate_per_s) + 1)
    estimates = EstimateProbe(backend.url, features(rides[0].body))
    with tap(stack) as results:
        proxy.deny(Code.PERMISSION_DENIED, f"subscriptions/{stack.settings.results_topic}-")
        denied_at = time.monotonic()
        deadline_s = denied_s + RECOVER_WAIT_S + 30
        load = run_load(Rider([backend.url]), rides, rate_per_s, deadline_s=deadline_s)
        readyz = f"{backend.url}/readyz"
        unready_s = time_until(lambda: http_status(readyz, 5) not in (None, 200), READY_WAIT_S)
        time.sleep(max(0.0, denied_at + denied_s - time.monotonic()))
        proxy.allow()
        ready_s = time_until(lambda: http_status(readyz, 5) == 200, RECOVER_WAIT_S)
        outcomes = load.wait()
        samples = estimates.stop()
    result.count(outcomes, results.duplicates)
    errors = error_lines(backend, "PERMISSION_DENIED")
    result.checks["turned unready while denied"] = unready_s is not None
    result.checks["said why in its log at ERROR"] = bool(errors)
    result.checks["/estimate answered 200 throughout"] = all(s == 200 for _, s, _ in samples)
    result.checks["ready again once restored"] = ready_s is not None
    result.notes += [
        "unready " + (f"{unready_s:.1f} s after the denial" if unready_s is not None else "never"),
        "ready again " + (f"{ready_s:.1f} s after the restore" if ready_s is not None else "never"),
        f"{len(errors)} ERROR lines naming it",
        counts_note(proxy, "StreamingPull"),
    ]
    return result


def results_not_found(
    lab: Lab, seconds: float = 20, rate_per_s: float = 10, answer_within_s: float = 30
) -> ScenarioResult:
    """Make the backend's results subscription NOT_FOUND mid-load, as if Pub/Sub had lost it.

    Each ride must have its final duration within `answer_within_s` of the load's end.
    """
    result = ScenarioResult("NOT_FOUND on the results subscription under load")
    stack, proxy = lab.proxied_stack("results-not-found")
    backend = stack.backends[0]
    s = stack.settings
    before = own_subscriptions(stack, backend)
    rides = lab.rides("nf", int(seconds * rate_per_s))
    with tap(stack) as results:
        # No re-confirming: only the backend may bring a ride in flight its answer, at once or
        # through GET /rides/<id> on the same backend.
        rider = Rider([backend.url], repost_after_s=3600)
        load = run_load(rider, rides, rate_per_s, deadline_s=seconds + answer_within_s)
        time.sleep(seconds / 3)
        # That one name only, not its successors: the subscription is gone, not the permission.
        gone = "|".join(re.escape(name) for name in before)
        proxy.deny(Code.NOT_FOUND, rf"(?:{gone})(?![\w.~%+-])")
        replaced_s = time_until(
            lambda: bool(set(own_subscriptions(stack, backend)) - set(before)), READY_WAIT_S
        )
        outcomes = load.wait()
    result.count(outcomes, results.duplicates)
    late = [o for o in outcomes if o.final is not None and o.attempts[-1].status == 202]
    result.checks["replaced its subscription"] = replaced_s is not None
    result.notes += [
        "new subscription "
        + (f"{replaced_s:.1f} s after NOT_FOUND" if replaced_s is not None else "never"),
        f"{len(late)} answered through GET after a 202; {result.lost} never answered",
        f"{len(subscriptions_of(stack.address, s.project, s.results_topic))} subscriptions left",
        counts_note(proxy, "StreamingPull"),
    ]
    return result


def stack_log(service: Service) -> str:
    return service.process.log_path.read_text(errors="replace")


def error_lines(service: Service, word: str) -> list[str]:
    """The service's JSON log records at ERROR (or worse) that mention `word`."""
    found = []
    for line in stack_log(service).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # gunicorn's own lines
        if record.get("severity") in ("ERROR", "CRITICAL") and word.lower() in line.lower():
            found.append(line)
    return found


def counts_note(proxy: ProxyProcess, method: str) -> str:
    counts = proxy.counts().get(method, {})
    return f"{method}: " + ", ".join(f"{n} {what}" for what, n in counts.items())


def throughput(outcomes: list[Outcome], started: float) -> dict[str, float]:
    """Rides answered a second over the run, and the p50 and p99 of their latency."""
    latencies = sorted(o.latency_s for o in outcomes if o.latency_s is not None)
    last = max((o.answered_at for o in outcomes if o.answered_at is not None), default=started)
    if not latencies:
        return {"answered_per_s": 0.0, "p50_s": 0.0, "p99_s": 0.0}
    return {
        "answered_per_s": len(latencies) / max(last - started, 1e-9),
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }
