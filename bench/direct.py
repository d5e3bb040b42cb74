"""Closed-loop throughput of one endpoint: the predictor's push route, the backend's /estimate."""

import json
from collections.abc import Callable, Sequence
from typing import Any

from . import wrk
from .figures import Figure, ms, skipped
from .procs import CpuMeter
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
    title = "Predictor alone: push requests, 8 concurrent"
    target = ">= 1,500 req/s, p99 < 10 ms"
    if not wrk.available():
        return skipped(
            "predictor_direct", title, "wrk is not installed (apt-get install wrk)", target
        )
    found = measure(
        predictor_url, "/", envelopes, runs=runs, duration_s=duration_s,
        cpu_roots=cpu_roots, progress=progress,
    )  # fmt: skip
    best = found["median"]
    errors = best["socket_errors"] + best["non_2xx"]
    return Figure(
        "predictor_direct",
        title,
        conditions(
            runs,
            duration_s,
            f"predictor: {workers} gunicorn workers x 8 threads, each request publishes its "
            f"result to the emulator and waits for the confirmation; {len(envelopes)} rides",
        ),  # fmt: skip
        f"{best['throughput_rps']:,.0f} req/s, p50 {ms(best['p50_ms'])}, p99 {ms(best['p99_ms'])}"
        f"{f', {errors} errors' if errors else ''}",
        target,
        best["throughput_rps"] >= 1500 and best["p99_ms"] < 10 and errors == 0,
        found,
    )


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
    title = f"POST /estimate, 8 concurrent, {workers} worker{'s' if workers > 1 else ''}"
    target = ">= 2,000 req/s, p99 < 5 ms"
    if not wrk.available():
        return skipped(
            f"estimate_{workers}", title, "wrk is not installed (apt-get install wrk)", target
        )
    bodies = [json.dumps(ride).encode() for ride in rides]
    found = measure(
        backend_url, "/estimate", bodies, runs=runs, duration_s=duration_s,
        cpu_roots=cpu_roots, progress=progress,
    )  # fmt: skip
    best = found["median"]
    errors = best["socket_errors"] + best["non_2xx"]
    return Figure(
        f"estimate_{workers}",
        title,
        conditions(
            runs,
            duration_s,
            f"one backend process (gunicorn master + {workers} worker x 16 threads{where}); "
            f"{len(bodies)} rides",
        ),  # fmt: skip
        f"{best['throughput_rps']:,.0f} req/s, p50 {ms(best['p50_ms'])}, p99 {ms(best['p99_ms'])}"
        f"{f', {errors} errors' if errors else ''}",
        target,
        best["throughput_rps"] >= 2000 and best["p99_ms"] < 5 and errors == 0,
        found,
    )
