"""Closed-loop throughput of one endpoint: the predictor's push route, the backend's /estimate."""

from collections.abc import Callable, Sequence
from typing import Any

from devstack.measure import CpuMeter

from . import wrk
from .figures import Figure, ms
from .stats import median_run

CONNECTIONS = 8
WARMUP_S = 3.0


def measure(
    base_url: str, path: str, bodies: Sequence[bytes], *, runs: int, duration_s: float,
    cpu_roots: dict[str, list[int]], progress: Callable[[str], None],
    connections: int = CONNECTIONS, warm_up: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Warm up, then run wrk `runs` times; return the median run (by throughput) and all runs."""
    if warm_up:
        wrk.run(base_url, path, bodies, connections=connections, duration_s=WARMUP_S)
    results = []
    for index in range(runs):
        meter = CpuMeter(cpu_roots)
        meter.start()
        result = wrk.run(base_url, path, bodies, connections=connections, duration_s=duration_s)
        results.append(row := result | {"server_cpu_cores": meter.stop()})
        progress(
            f"  run {index + 1}/{runs}, {connections} connections: {row['throughput_rps']:.0f} "
            f"req/s, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, non-2xx "
            f"{row['non_2xx']}, wrk cpu {row['client_cpu_cores']:.2f} cores, servers "
            f"{row['server_cpu_cores']}"
        )
    return {"median": median_run(results, "throughput_rps"), "runs": results}


def figure(
    key: str, title: str, target: str, min_rps: float, max_p99_ms: float, found: dict[str, Any],
    runs: int, duration_s: float, what: str,
) -> Figure:  # fmt: skip
    """Judge the median run of `measure` against its target."""
    best = found["median"]
    errors = best["socket_errors"] + best["non_2xx"]
    return Figure(
        key,
        title,
        f"wrk, {CONNECTIONS} keep-alive connections, 1 thread; {WARMUP_S:g} s warm-up, then "
        f"{runs} x {duration_s:g} s, median run by throughput; {what}",
        f"{best['throughput_rps']:,.0f} req/s, p50 {ms(best['p50_ms'])}, p99 {ms(best['p99_ms'])}"
        f"{f', {errors} errors' if errors else ''}",
        target,
        best["throughput_rps"] >= min_rps and best["p99_ms"] < max_p99_ms and errors == 0,
        found,
    )
