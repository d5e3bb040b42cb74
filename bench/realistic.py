"""The hand-written Pub/Sub paths under a region's round trip, by a delay proxy.

`make bench-realistic` (`python -m bench.realistic`) puts the lab's TCP proxy between its own
emulator and the services (15 ms each way) and measures the predictor alone (wrk at 8 and 64
connections, one worker pinned to one CPU, as a one-vCPU Cloud Run instance) and end to end (2
backends through the proxy at 100 and 400 rides/s; the predictor reaches the emulator directly,
whose serial push connections would otherwise cap the stream). docs/benchmarks.md ("Under a
region's latency") has the table. Writes bench/results/realistic-<time>.json.
"""

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from devstack.measure import pids_matching
from devstack.proxy import ProxyProcess
from devstack.stack import ROOT, Service, Stack, isolated_settings

from . import direct, e2e, emulator_limit, setup, wrk

RESULTS = ROOT / "bench" / "results"
log = logging.getLogger("bench.realistic")


class Realistic:
    """What the measurements share: the model, the rides, the emulator, the proxy."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.tracing = "off"  # of the stacks started next: "on" samples at --trace-ratio
        self.model = setup.ensure_model(retrain=False, progress=log.info)
        self.rides = setup.sample_rides(1000)
        self.expected = setup.expected_durations(self.model.folder, self.rides)
        self.envelopes = [setup.ride_envelope(r, f"d{i}") for i, r in enumerate(self.rides[:200])]

    def stack(self, emulator: Any, predictor_proxy: str | None) -> Stack:
        """A predictor on topics of its own: through the proxy on one CPU, else 2 workers."""
        settings = isolated_settings(
            emulator, self.workdir, backends=0, predictor_workers=1 if predictor_proxy else 2,
            tracking_uri=setup.TRACKING_URI, model_uri=str(self.model.folder),
            pubsub_hosts={"predictor_service": predictor_proxy} if predictor_proxy else {},
            service_env=self.service_env(),
        )  # fmt: skip
        stack = Stack(settings, emulator=emulator)
        if predictor_proxy:
            stack.predictor.process.argv[:0] = ["taskset", "-c", "0"]
        return stack

    def service_env(self) -> dict[str, str]:
        env = {
            "GUNICORN_THREADS": str(self.args.threads),
            "PUBLISH_MAX_IN_FLIGHT": str(self.args.in_flight),
            "TRACE_EXPORTER": "none",
        }
        if self.tracing == "on":  # as deployed, the local span file in Cloud Trace's place
            env |= {
                "TRACE_EXPORTER": "local",
                "TRACE_SAMPLE_RATIO": str(self.args.trace_ratio),
                "TRACE_FILE": str(self.workdir / "spans.jsonl"),
            }
        return env

    def backend(self, stack: Stack, proxy: str) -> Service:
        """A backend on `stack`'s topics reaching Pub/Sub through the delay proxy."""
        env = self.service_env() | setup.topics(stack.settings)
        env |= {"PUBSUB_EMULATOR_HOST": proxy, "GUNICORN_THREADS": str(self.args.backend_threads)}
        return setup.service("backend_service", stack.emulator, stack.settings.workdir, env)

    def push(self, stack: Stack, roots: dict[str, list[int]]) -> list[dict[str, Any]]:
        """wrk straight at the predictor, at each concurrency."""
        url = stack.predictor.url
        wrk.run(url, "/", self.envelopes, connections=64, duration_s=3)  # warm-up
        return [
            direct.measure(
                url, "/", self.envelopes, runs=1, duration_s=self.args.push_s, cpu_roots=roots,
                progress=log.info, connections=connections, warm_up=False,
            )["median"] | {"connections": connections}
            for connections in self.args.connections
        ]  # fmt: skip

    def end_to_end(self, urls: list[str], roots: dict[str, list[int]]) -> list[dict[str, Any]]:
        """Open-loop confirmations at each rate after a warm-up, every answer checked."""
        rows = []
        for rate, seconds in [(50, 3), *[(rate, self.args.e2e_s) for rate in self.args.rates]]:
            found = e2e.run_rate(
                urls, self.rides, self.expected, rate=rate, duration_s=seconds,
                cpu_roots=roots, progress=log.info,
            )  # fmt: skip
            found.pop("series", None)
            rows.append(found | {"rate": rate})
        return rows[1:]

    def measure(self, emulator: Any, proxy: str, proxy_pid: int) -> dict[str, Any]:
        found: dict[str, Any] = {}
        roots = {"proxy": [proxy_pid], "emulator": pids_matching(f"--host-port={emulator.address}")}
        if "push" in self.args.only:
            log.info(f"push, predictor through the proxy, {self.args.threads} threads")
            with contextlib.ExitStack() as running:
                stack = self.stack(emulator, predictor_proxy=proxy)
                running.callback(stack.stop)
                stack.start()
                roots["predictor"] = [stack.predictor.process.pid or 0]
                found["push"] = self.push(stack, roots)
        if "e2e" in self.args.only:
            # The emulator pushes over two serial connections a subscription: a predictor whose
            # publish took a round trip would cap the stream at a few dozen rides a second, a
            # limit of the emulator's, not Pub/Sub's. Only the backends go through the proxy.
            log.info("2 backends through the proxy; predictor direct, 2 workers")
            with contextlib.ExitStack() as running:
                stack = self.stack(emulator, predictor_proxy=None)
                running.callback(stack.stop)
                stack.start()
                roots["predictor"] = [stack.predictor.process.pid or 0]
                backends = [self.backend(stack, proxy) for _ in range(2)]
                for i, backend in enumerate(backends):
                    running.callback(backend.stop)
                    backend.start()
                    roots[f"backend_{i}"] = [backend.process.pid or 0]
                found["e2e"] = self.end_to_end([b.url for b in backends], roots)
        return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=15.0, help="added each way")
    parser.add_argument("--only", nargs="+", default=["push", "e2e"], choices=["push", "e2e"])
    parser.add_argument("--threads", type=int, default=64, help="predictor gunicorn threads")
    parser.add_argument("--backend-threads", type=int, default=64)
    parser.add_argument("--in-flight", type=int, default=8, help="PUBLISH_MAX_IN_FLIGHT")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 400])
    parser.add_argument("--push-s", type=float, default=10)
    parser.add_argument("--e2e-s", type=float, default=20)
    parser.add_argument(
        "--tracing", nargs="+", default=["off"], choices=["off", "on"],
        help="run each variant with tracing off and/or on, in this order",
    )  # fmt: skip
    parser.add_argument("--trace-ratio", type=float, default=0.1, help="sampling when on")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the variants, interleaved")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    args = parse_args(argv)
    if not wrk.available():
        log.error("wrk is not installed: make bench-tools")
        return 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = setup.WORKDIR / "realistic" / stamp
    bench = Realistic(args, workdir)
    emulator = setup.start_emulator(workdir)
    report: dict[str, Any] = {"args": vars(args), "load_before": os.getloadavg()}
    try:
        log.info(emulator_limit.warm_up(emulator, workdir, 8))
        delay_s = args.delay_ms / 1000
        with ProxyProcess(emulator.address, "tcp", delay_s=delay_s) as proxy:
            for round_ in range(args.rounds):
                for tracing in args.tracing:
                    bench.tracing = tracing
                    # Keyed as when the official clients ran beside it: the earlier results compare.
                    key = "hand-written"
                    if args.tracing != ["off"] or args.rounds > 1:
                        key = f"hand-written, tracing {tracing}, round {round_ + 1}"
                    log.info(f"== {key}")
                    report[key] = bench.measure(emulator, proxy.address, proxy.pid)
    finally:
        emulator.stop()
        report["load_after"] = os.getloadavg()
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"realistic-{stamp}.json"
        out.write_text(json.dumps(report, indent=1, default=str))
        log.info(f"load average before {report['load_before']}, after {report['load_after']}")
        log.info(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
