"""A steady load for minutes on two backends: resources stay flat, every ride is answered."""

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass

from devstack.lab import Lab
from devstack.load import EstimateProbe, Rider, run_load
from devstack.measure import ProcessStats, process_stats
from devstack.processes import process_tree
from devstack.pubsub import subscriptions_of
from devstack.stack import Stack

from .observe import features, tap, urls
from .report import ScenarioResult

log = logging.getLogger("faults")
SAMPLE_S = 5.0
# Allowed growth from the first sample after warm-up to the last. Memory: each answered ride
# stays in its backend's LocalRides (bounded at 100,000 rides; docs/reliability.md has its
# measured size a ride), so a process may grow by a base amount plus that much per ride it handled.
RSS_GROWTH_KB = 8 * 1024
RSS_PER_RIDE_KB = 2.0
# Threads: gunicorn's request pool (GUNICORN_THREADS) starts threads on demand, at
# concurrency peaks, so a backend worker climbs to a plateau; gRPC may add a few of its own for
# a re-opened stream. A leak would grow past what they can add.
THREAD_GROWTH = 16 + 4
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
        estimates = EstimateProbe(stack.backends[0].url, features(rides[0].body), rate_per_s / 2)
        sampler.start()
        outcomes = load.wait()
        stop.set()
        sampler.join(timeout=SAMPLE_S * 3)
        estimated = estimates.stop()
    result.count(outcomes, results.duplicates)
    result.checks["every estimate answered"] = all(s == 200 for _, s, _ in estimated)
    _judge_growth(result, samples, rides_per_process=len(rides) / len(stack.backends))
    trace = lab.workdir / "soak-samples.jsonl"
    trace.write_text("".join(json.dumps(asdict(sample)) + "\n" for sample in samples))
    log.info("resource samples in %s", trace)
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


def _judge_growth(result: ScenarioResult, samples: list[Sample], rides_per_process: float) -> None:
    """Compare the first sample after warm-up (a fifth of the run) with the last."""
    rss_allowed_kb = RSS_GROWTH_KB + RSS_PER_RIDE_KB * rides_per_process
    if len(samples) < 3:
        result.checks["enough resource samples"] = False
        return
    first, last = samples[max(1, len(samples) // 5)], samples[-1]
    grew: list[str] = []
    worst_rss, worst_threads, worst_fds = 0, 0, 0
    for name, before in first.processes.items():
        after = last.processes.get(name)
        if after is None:
            grew.append(f"{name} exited")
            continue
        worst_rss = max(worst_rss, after.rss_kb - before.rss_kb)
        worst_threads = max(worst_threads, after.threads - before.threads)
        worst_fds = max(worst_fds, after.fds - before.fds)
        if after.rss_kb - before.rss_kb > rss_allowed_kb:
            grew.append(f"{name} RSS +{(after.rss_kb - before.rss_kb) // 1024} MB")
        if after.threads - before.threads > THREAD_GROWTH:
            grew.append(f"{name} threads {before.threads}->{after.threads}")
        if after.fds - before.fds > FD_GROWTH:
            grew.append(f"{name} fds {before.fds}->{after.fds}")
    result.checks["memory, threads and fds flat"] = not grew
    result.checks["results subscriptions constant"] = len({s.subscriptions for s in samples}) == 1
    result.notes += [
        f"{len(samples)} samples of {len(last.processes)} processes over "
        f"{last.at - first.at:.0f} s; worst growth: RSS {worst_rss / 1024:.1f} MB, "
        f"threads {worst_threads:+d}, fds {worst_fds:+d}",
        f"results subscriptions: {last.subscriptions}",
        *grew,
    ]
