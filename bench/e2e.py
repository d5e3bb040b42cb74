"""End to end through the stream: POST /rides at a fixed rate, every answer checked."""

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from devstack import load
from devstack.measure import CpuMeter

from .figures import Figure, ms
from .stats import drift, summarize, windows

WINDOW_S = 10.0  # latency windows for the flatness check and the plot
# The stream keeps pace when it answers at least this share of the offered rate.
MIN_PACE = 0.95
MAX_DRIFT = 2.0  # last window's p50 over the first's: a growing backlog shows as far more


def check(
    result: load.OpenLoopResult, rides: Sequence[dict[str, Any]], expected: Sequence[float],
    ride_ids: Callable[[int], str],
) -> dict[str, Any]:  # fmt: skip
    """Classify every answer: right, crossed (another ride's figure), pending, or failed."""
    sent = int(result.rate * result.duration_s)
    right, crossed, pending, failed = 0, [], 0, []
    latencies, series = [], []
    for outcome in result.outcomes:
        body = load.decode(outcome)
        if outcome.status == 200:
            index = outcome.index
            if (
                body.get("ride_id") == ride_ids(index)
                and body.get("duration_final") == expected[index % len(rides)]
            ):
                right += 1
            else:
                crossed.append({"index": index, "answer": body})
            latencies.append(outcome.latency_ms)
            series.append((outcome.scheduled_s, outcome.latency_ms))
        elif outcome.status == 202:
            pending += 1
        else:
            failed.append({"index": outcome.index, "status": outcome.status, "body": body})
    answered = len(result.outcomes)
    # Rides answered per second of the whole run, backlog drained included: the stream's pace.
    finished = max((o.scheduled_s + o.latency_ms / 1000 for o in result.outcomes), default=0.0)
    return {
        "sent": sent,
        "offered_per_s": result.rate,
        "answered_per_s": round(right / finished, 1) if finished else 0.0,
        "right": right,
        "crossed": len(crossed),
        "crossed_examples": crossed[:5],
        "pending_202": pending,
        "failed": len(failed) + len(result.errors),
        "failed_examples": (failed + [{"error": e} for e in result.errors])[:5],
        "unanswered": sent - answered - len(result.errors),
        "latency_ms": summarize(latencies),
        "windows": [
            {"start_s": start, "p50_ms": p50, "p99_ms": p99}
            for start, p50, p99 in windows(series, WINDOW_S)
        ],
        "drift": drift(series, WINDOW_S),
        "series": [(round(t, 3), round(v, 2)) for t, v in series],
        "client_cpu_cores": round(result.client_cpu_cores, 3),
        "max_send_lag_ms": max((o.send_lag_ms for o in result.outcomes), default=0.0),
        "connections_opened": result.max_connections,
    }


def run_rate(
    backend_urls: Sequence[str],
    rides: Sequence[dict[str, Any]],
    expected: Sequence[float],
    *,
    rate: float,
    duration_s: float,
    cpu_roots: dict[str, list[int]],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Send `rate` confirmations a second, each a distinct ride_id, and check every answer."""
    tag = uuid.uuid4().hex[:6]

    def ride_id(index: int) -> str:
        return f"bench-{tag}-{index}"

    def body(index: int) -> bytes:
        return json.dumps(rides[index % len(rides)] | {"ride_id": ride_id(index)}).encode()

    meter = CpuMeter(cpu_roots)
    meter.start()
    result = load.run(
        backend_urls, "/rides", body, rate=rate, duration_s=duration_s, progress=progress
    )
    found = check(result, rides, expected, ride_id) | {"server_cpu_cores": meter.stop()}
    lat = found["latency_ms"]
    progress(
        f"  {rate:g} rides/s: {found['right']}/{found['sent']} right, {found['crossed']} crossed, "
        f"{found['pending_202']} pending, {found['failed']} failed; p50 {lat.get('p50', 0):.1f} ms"
        f" p99 {lat.get('p99', 0):.1f} ms; client cpu {found['client_cpu_cores']:.2f} cores"
    )
    return found


def conditions(rate: float, duration_s: float, backends: int, predictor_workers: int) -> str:
    return (
        f"open loop, {rate:g} rides/s for {duration_s:g} s after a 3 s warm-up at 50/s, latency "
        f"from the scheduled send; {backends} backend processes (1 worker x 16 threads each, "
        f"requests alternate), predictor {predictor_workers} workers; each ride_id distinct, "
        "every answer checked against the model's own prediction for that ride"
    )


def figure_100(found: dict[str, Any], conditions_text: str) -> Figure:
    lat = found["latency_ms"]
    bad = found["crossed"] + found["failed"] + found["unanswered"] + found["pending_202"]
    return Figure(
        "e2e_100", "End to end, POST /rides to answer, 100 rides/s", conditions_text,
        f"p50 {ms(lat.get('p50', 0))}, p99 {ms(lat.get('p99', 0))}; "
        f"{found['right']}/{found['sent']} right",
        "p50 < 20 ms, p99 < 60 ms",
        bool(lat.get("count")) and lat["p50"] < 20 and lat["p99"] < 60 and bad == 0, found,
    )  # fmt: skip


def figure_400(found: dict[str, Any], conditions_text: str) -> Figure:
    lat = found["latency_ms"]
    lost = found["failed"] + found["unanswered"] + found["pending_202"]
    kept_pace = found["answered_per_s"] >= MIN_PACE * found["offered_per_s"]
    return Figure(
        "e2e_400", "End to end, sustained 400 rides/s", conditions_text,
        f"p50 {ms(lat.get('p50', 0))}, p99 {ms(lat.get('p99', 0))}; last/first 10 s p50 "
        f"{found['drift']:.2f}; {found['right']}/{found['sent']} right, {found['crossed']} "
        f"crossed, {lost} lost or late; answered {found['answered_per_s']:g} rides/s",
        f"keeps pace (answers >= {MIN_PACE:.0%} of the rate), flat latency (last/first window "
        f"p50 <= {MAX_DRIFT:g}), nothing lost or crossed",
        bool(lat.get("count")) and kept_pace and found["drift"] <= MAX_DRIFT and lost == 0
        and not found["crossed"], found,
    )  # fmt: skip
