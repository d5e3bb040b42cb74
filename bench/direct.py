"""Closed-loop throughput of one endpoint: the predictor's push route, the backend's /estimate."""

import json
from collections.abc import Callable, Sequence
from typing import Any

from devstack.measure import CpuMeter

from . import wrk
from .figures import Figure, ms, skipped
from .stats import median_run

CONNECTIONS = 8
WARMUP_S = 3.0


def measure(
    base_url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    runs: int,
    duration_s: float,
    cpu_roots: dict[str, list[int]],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Warm up, then run wrk `runs` times; return the median run (by throughput) and all runs."""
    wrk.run(base_url, path, bodies, connections=CONNECTIONS, duration_s=WARMUP_S)
    results = []
    for index in range(runs):
        meter = CpuMeter(cpu_roots)
        meter.start()
        result = wrk.run(base_url, path, bodies, connections=CONNECTIONS, duration_s=duration_s)
        row = result.as_dict() | {"server_cpu_cores": meter.stop()}
        results.append(row)
        progress(
            f"  run {index + 1}/{runs}: {row['throughput_rps']:.0f} req/s, "
            f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
            f"wrk cpu {row['client_cpu_cores']:.2f} cores, servers {row['server_cpu_cores']}"
        )
    return {"median": median_run(results, "throughput_rps"), "runs": results}


def conditions(runs: int, duration_s: float, extra: str) -> str:
    return (
        f"wrk, {CONNECTIONS} keep-alive connections, 1 thread; {WARMUP_S:g} s warm-up, then "
        f"{runs} x {duration_s:g} s, median run by throughput; {extra}"
    )


def wrk_figure(
    key: str,
    title: str,
    target: str,
    min_rps: float,
    max_p99_ms: float,
    url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    runs: int,
    duration_s: float,
    what: str,
    cpu_roots: dict[str, list[int]],
    progress: Callable[[str], None],
) -> Figure:
    """Measure one endpoint with wrk and judge the median run against its target."""
    if not wrk.available():
        return skipped(key, title, "wrk is not installed (apt-get install wrk)", target)
    found = measure(
        url, path, bodies, runs=runs, duration_s=duration_s, cpu_roots=cpu_roots,
        progress=progress,
    )  # fmt: skip
    best = found["median"]
    errors = best["socket_errors"] + best["non_2xx"]
    return Figure(
        key,
        title,
        conditions(runs, duration_s, f"{what}; {len(bodies)} rides"),
        f"{best['throughput_rps']:,.0f} req/s, p50 {ms(best['p50_ms'])}, p99 {ms(best['p99_ms'])}"
        f"{f', {errors} errors' if errors else ''}",
        target,
        best["throughput_rps"] >= min_rps and best["p99_ms"] < max_p99_ms and errors == 0,
        found,
    )


def predictor_figure(
    predictor_url: str,
    envelopes: Sequence[bytes],
    *,
    runs: int,
    duration_s: float,
    cpu_roots: dict[str, list[int]],
    workers: int,
    progress: Callable[[str], None],
) -> Figure:
    """Push requests straight to the predictor, each predicted and published to the emulator."""
    return wrk_figure(
        "predictor_direct", "Predictor alone: push requests, 8 concurrent",
        ">= 1,500 req/s, p99 < 10 ms", 1500, 10, predictor_url, "/", envelopes,
        runs=runs, duration_s=duration_s,
        what=f"predictor: {workers} gunicorn workers x 8 threads, each request publishes its "
        "result to the emulator and waits for the confirmation",
        cpu_roots=cpu_roots, progress=progress,
    )  # fmt: skip


def estimate_figure(
    backend_url: str,
    rides: Sequence[dict[str, Any]],
    *,
    runs: int,
    duration_s: float,
    cpu_roots: dict[str, list[int]],
    progress: Callable[[str], None],
    workers: int = 1,
    where: str = "",
) -> Figure:
    """POST /estimate on one backend process: the coarse model, no stream."""
    return wrk_figure(
        f"estimate_{workers}",
        f"POST /estimate, 8 concurrent, {workers} worker{'s' if workers > 1 else ''}",
        ">= 2,000 req/s, p99 < 5 ms", 2000, 5, backend_url, "/estimate",
        [json.dumps(ride).encode() for ride in rides],
        runs=runs, duration_s=duration_s,
        what=f"one backend process (gunicorn master + {workers} worker x 16 threads{where})",
        cpu_roots=cpu_roots, progress=progress,
    )  # fmt: skip
