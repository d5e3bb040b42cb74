"""A steady load for minutes on two backends: resources stay flat, every ride is answered."""

import os
import threading
import time
from dataclasses import dataclass

from devstack.stack import Stack

from .lab import Lab
from .observe import ProcessStats, process_stats, process_tree, subscriptions_of
from .process_faults import tap, urls
from .report import ScenarioResult
from .rider import EstimateProbe, Rider, double_answers, run_load

SAMPLE_S = 5.0
# Allowed growth from the first sample after warm-up to the last. Memory: each answered ride
# stays in its backend's ResultStore (bounded at 100,000), so some growth is the design.
RSS_GROWTH_KB = 16 * 1024
THREAD_GROWTH = 4
FD_GROWTH = 8


@dataclass(frozen=True)
class Sample:
    at: float
    processes: dict[str, ProcessStats]  # by role and pid, e.g. "backend-1/worker-4242"
    subscriptions: int


def short_soak(lab: Lab) -> ScenarioResult:
    """The soak that `make test` runs: 40 s at 10 rides/s."""
    return soak(lab, seconds=float(os.environ.get("SOAK_S", "40")), rate_per_s=10)


def soak(lab: Lab, seconds: float, rate_per_s: float) -> ScenarioResult:
    """Confirm rides at `rate_per_s` for `seconds` on two backends, sampling every process."""
    result = ScenarioResult(f"soak: {seconds:.0f} s at {rate_per_s:g} rides/s, two backends")
    stack = lab.stack("soak", backends=2)
    samples: list[Sample] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(stack, samples, stop), daemon=True)
    with tap(stack) as results:
        rides = lab.rides("soak", int(seconds * rate_per_s))
        load = run_load(Rider(urls(stack)), rides, rate_per_s, deadline_s=seconds + 60)
        body = {k: v for k, v in rides[0].body.items() if k != "ride_id"}
        estimates = EstimateProbe(stack.backends[0].url, body, rate_per_s=rate_per_s / 2)
        sampler.start()
        outcomes = load.wait()
        stop.set()
        sampler.join(timeout=SAMPLE_S * 3)
        estimated = estimates.stop()
        result.double_answers = double_answers(outcomes)
    result.count(outcomes, results.duplicates)
    result.checks["no double answer"] = result.double_answers == 0
    result.checks["every estimate answered"] = all(s == 200 for _, s, _ in estimated)
    _judge_growth(result, samples)
    return result


def _sample(stack: Stack, samples: list[Sample], stop: threading.Event) -> None:
    s = stack.settings
    while not stop.wait(SAMPLE_S):
        processes = {}
        for role, service in [("predictor", stack.predictor)] + [
            (f"backend-{i}", b) for i, b in enumerate(stack.backends)
        ]:
            assert service.process.pid is not None
            for pid in process_tree(service.process.pid):
                if stats := process_stats(pid):
                    kind = "master" if pid == service.process.pid else "worker"
                    processes[f"{role}/{kind}-{pid}"] = stats
        names = subscriptions_of(stack.address, s.project, s.results_topic)
        count = len([n for n in names if "/tap-" not in n])  # the drill's own tap aside
        samples.append(Sample(time.monotonic(), processes, count))


def _judge_growth(result: ScenarioResult, samples: list[Sample]) -> None:
    """Compare the first sample after warm-up (a fifth of the run) with the last."""
    if len(samples) < 3:
        result.checks["enough resource samples"] = False
        return
    first, last = samples[max(1, len(samples) // 5)], samples[-1]
    grew: list[str] = []
    worst_rss = 0
    for name, before in first.processes.items():
        after = last.processes.get(name)
        if after is None:
            grew.append(f"{name} exited")
            continue
        worst_rss = max(worst_rss, after.rss_kb - before.rss_kb)
        if after.rss_kb - before.rss_kb > RSS_GROWTH_KB:
            grew.append(f"{name} RSS +{(after.rss_kb - before.rss_kb) // 1024} MB")
        if after.threads - before.threads > THREAD_GROWTH:
            grew.append(f"{name} threads {before.threads}->{after.threads}")
        if after.fds - before.fds > FD_GROWTH:
            grew.append(f"{name} fds {before.fds}->{after.fds}")
    result.checks["memory, threads and fds flat"] = not grew
    result.checks["results subscriptions constant"] = len({s.subscriptions for s in samples}) == 1
    result.notes += [
        f"{len(samples)} samples of {len(last.processes)} processes; worst RSS growth "
        f"{worst_rss / 1024:.1f} MB over {last.at - first.at:.0f} s",
        f"results subscriptions: {last.subscriptions}",
        *grew,
    ]
