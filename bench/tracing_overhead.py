"""`python -m bench.tracing_overhead`: the CPU the spans of one ride add to each service.

Times, in one process, exactly the span work the code does for one ride (ride_stream.tracing):
the backend's request, claim, publish and wake-up spans with the traceparent it injects and
reads back; the predictor's push, predict and result-publish spans. Tracing off (no exporter,
nothing recorded) and on at a sampling ratio, each sampled span exported to a span file by the
SDK's batch processor, as `make run` does. Prints microseconds of CPU per ride for each, to
set against the services' CPU per ride in docs/benchmarks.md.
"""

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ride_stream.span_file import SpanFile
from ride_stream.tracing import (
    LOCAL_EXPORT_DELAY_MS,
    RIDE_ID,
    Tracing,
    message_attributes,
    messaging,
)

ENVIRON = {"HTTP_TRACEPARENT": ""}  # a caller without trace context: the service decides


def backend_ride(tracing: Tracing, ride_id: str) -> dict[str, str]:
    """The backend's spans of one ride; returns the ride message's attributes."""
    with tracing.server(ENVIRON, "POST /rides") as request:
        if request.is_recording():
            request.set_attribute(RIDE_ID, ride_id)
        with tracing.internal("claim ride"):
            pass
        with tracing.producer("ride-data-push publish") as publishing:
            attributes = message_attributes(publishing)
            if publishing.is_recording():
                publishing.set_attributes(messaging("ride-data-push", "send", "1"))
    return attributes


def predictor_push(tracing: Tracing, attributes: dict[str, str]) -> dict[str, str]:
    """The predictor's spans of one push; returns the result message's attributes."""
    with tracing.consumer(attributes, "ride-data-push-sub subscribe", ENVIRON) as push:
        if push.is_recording():
            push.set_attributes(messaging("ride-data-push-sub", "process", "1"))
        with tracing.internal("predict") as predicting:
            if predicting.is_recording():
                predicting.set_attribute("model_version", "ride-duration/1")
        with tracing.producer("ride-duration-pull publish") as publishing:
            result = message_attributes(publishing)
            if publishing.is_recording():
                publishing.set_attributes(messaging("ride-duration-pull", "send", "2"))
    return result


def backend_wake(tracing: Tracing, attributes: dict[str, str]) -> None:
    with tracing.consumer(attributes, "ride-duration-pull-x subscribe") as wake:
        if wake.is_recording():
            wake.set_attributes(messaging("ride-duration-pull-x", "process", "2"))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def cpu_us_per_ride(step: Callable[[int], None], rides: int) -> float:
    for i in range(min(rides, 2000)):  # warm-up
        step(i)
    started = time.process_time()
    for i in range(rides):
        step(i)
    return (time.process_time() - started) / rides * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rides", type=int, default=50_000)
    parser.add_argument("--ratio", type=float, default=0.1, help="sampling when on")
    parser.add_argument("--rounds", type=int, default=3, help="off and on, interleaved")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        spans = SpanFile(Path(folder) / "spans.jsonl")
        tracings = {
            "off": (Tracing("backend"), Tracing("predictor")),
            f"on, {args.ratio:g} sampled": tuple(
                Tracing(service, args.ratio, spans, LOCAL_EXPORT_DELAY_MS)
                for service in ("backend", "predictor")
            ),
        }
        say(f"load average {os.getloadavg()}; {args.rides} rides a round; CPU per ride, us")
        for round_ in range(1, args.rounds + 1):
            for name, (backend, predictor) in tracings.items():

                def backend_side(i: int, backend: Tracing = backend) -> None:
                    attributes = backend_ride(backend, f"r{i}")
                    backend_wake(backend, attributes)  # the result carries the same context

                b = cpu_us_per_ride(backend_side, args.rides)
                p = cpu_us_per_ride(lambda _, p=predictor: predictor_push(p, {}), args.rides)
                say(f"round {round_}, tracing {name:<16} backend {b:6.1f}  predictor {p:6.1f}")
        for tracing in [t for pair in tracings.values() for t in pair]:
            tracing.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
