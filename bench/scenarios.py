"""The measurements in order, each on the stack it needs, every process stopped afterwards."""

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.lab import EXIT_WAIT_S
from devstack.measure import pids_matching
from devstack.stack import Service, Stack, start_isolated

from . import direct, e2e, emulator_limit, lifecycle, modelfig, setup, wrk
from .figures import Figure, skipped

RIDES = 1000  # distinct rides from the validation month, cycled through


@dataclass(frozen=True, kw_only=True)
class Plan:
    """How many runs of each measurement, and how long each lasts: the full run by default."""

    name: str = "full"
    wrk_runs: int = 3
    wrk_s: float = 10
    e2e_low_s: float = 30
    e2e_high_s: float = 60
    cold_starts: int = 3
    registry_cold_start: bool = True
    noop_rates: tuple[float, ...] = (100, 400, 1000)
    noop_s: float = 5
    idle_messages: int = 10
    sigterm_under_load: bool = True
    estimate_two_workers: bool = True
    emulator_warmup_s: float = 15


PLANS = {
    "full": Plan(),
    "quick": Plan(
        name="quick",
        wrk_runs=1,
        wrk_s=5,
        e2e_low_s=10,
        e2e_high_s=15,
        cold_starts=1,
        registry_cold_start=False,
        noop_rates=(400,),
        noop_s=3,
        idle_messages=3,
        sigterm_under_load=False,
        estimate_two_workers=False,
        emulator_warmup_s=8,
    ),  # fmt: skip
}


class Bench:
    """Hold what the scenarios share: the model, the rides, the emulator, the figures so far."""

    def __init__(
        self, plan: Plan, workdir: Path, progress: Callable[[str], None], retrain: bool = False,
        tracing: Sequence[str] = (), trace_ratio: float = 0.1,
    ) -> None:  # fmt: skip
        self.plan, self.workdir, self.progress, self.retrain = plan, workdir, progress, retrain
        self.tracing, self.trace_ratio = list(tracing), trace_ratio  # "off"/"on" in run order
        self.figures: list[Figure] = []
        self._stacks: list[Stack] = []
        self._services: list[Service] = []
        self.emulator: Any = None
        self.memory: dict[str, Any] = {}
        self.exits: dict[str, Any] = {}

    def run_all(self) -> list[Figure]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.model = setup.ensure_model(retrain=self.retrain, progress=self.progress)
        self.progress(f"model {self.model.version} from {self.model.folder}")
        self.pythons = {
            package: setup.image_python(package, self.progress)
            for package in ("predictor_service", "backend_service")
        }
        self.rides = setup.sample_rides(RIDES)
        self.expected = setup.expected_durations(self.model.folder, self.rides)
        self.figures += modelfig.figures(self.model, self.rides[0])
        self.progress("starting the bench's own Pub/Sub emulator")
        self.emulator = setup.start_emulator(self.workdir)
        self.progress(
            f"warming the emulator up: {emulator_limit.WARM_UP_RATE:g} messages/s to a no-op "
            f"push endpoint for {self.plan.emulator_warmup_s:g} s"
        )
        delivered = emulator_limit.warm_up(self.emulator, self.workdir, self.plan.emulator_warmup_s)
        self.progress(f"  {delivered}")
        steps = [self.predictor_alone, self.lifecycle, self.end_to_end, self.emulator_limit]
        for step in steps + ([self.tracing_side_by_side] if self.tracing else []):
            try:
                step()
            except Exception as err:  # one failed step must not lose the others' figures
                self.progress(f"{step.__name__} failed: {type(err).__name__}: {err}")
                self.figures.append(skipped(step.__name__, step.__doc__ or "", repr(err)))
            finally:
                self._stop_all()
        return self.figures

    def _roots(self, **pids: int | None) -> dict[str, list[int]]:
        roots = {name: [pid] for name, pid in pids.items() if pid is not None}
        return roots | {"emulator": pids_matching(f"--host-port={self.emulator.address}")}

    def _stack(self, backends: int, predictor_workers: int, **settings: Any) -> Stack:
        self.progress(f"starting a predictor ({predictor_workers} workers), {backends} backends")
        stack = start_isolated(
            self.emulator, self.workdir, backends=backends, predictor_workers=predictor_workers,
            tracking_uri=setup.TRACKING_URI, model_uri=str(self.model.folder), **settings,
        )  # fmt: skip
        self._stacks.append(stack)
        return stack

    def _lone(
        self, package: str, env: dict[str, str], image_like: bool = True, on: Stack | None = None
    ) -> Service:
        """A lone service, 1 worker, on `on`'s topics (else the first stack's), image-like."""
        python = self.pythons[package] if image_like else None
        env = setup.topics(on.settings if on else self.topics) | env
        service = setup.service(package, self.emulator, self.workdir, env, python)
        self._services.append(service)
        return service

    def _venv(self, package: str) -> str:
        if self.pythons[package] is None:
            return "the dev virtualenv"
        return f"a virtualenv with only {package}/requirements.txt, as in the image"

    def _envelopes(self, prefix: str, count: int = 200) -> list[bytes]:
        return [setup.ride_envelope(r, f"{prefix}{i}") for i, r in enumerate(self.rides[:count])]

    def _wrk_figure(
        self, key: str, title: str, target: str, min_rps: float, max_p99_ms: float, url: str,
        path: str, bodies: Sequence[bytes], what: str, **pids: int | None,
    ) -> Figure:  # fmt: skip
        """Measure one endpoint with wrk and judge the median run against its target."""
        if not wrk.available():
            return skipped(key, title, "wrk is not installed (apt-get install wrk)", target)
        runs, seconds = self.plan.wrk_runs, self.plan.wrk_s
        found = direct.measure(
            url, path, bodies, runs=runs, duration_s=seconds, cpu_roots=self._roots(**pids),
            progress=self.progress,
        )  # fmt: skip
        what = f"{what}; {len(bodies)} rides"
        return direct.figure(key, title, target, min_rps, max_p99_ms, found, runs, seconds, what)

    def predictor_alone(self) -> None:
        """Measurement 1: push requests straight to a predictor with 2 workers."""
        self.progress("predictor alone: push requests, 8 concurrent (wrk)")
        stack = self._stack(backends=0, predictor_workers=2)
        self.topics = stack.settings  # later lone services use its topics
        figure = self._wrk_figure(
            "predictor_direct", "Predictor alone: push requests, 8 concurrent",
            ">= 1,500 req/s, p99 < 10 ms", 1500, 10, stack.predictor.url, "/",
            self._envelopes("d"), "predictor: 2 gunicorn workers x 8 threads, each request "
            "publishes its result to the emulator and waits for the confirmation",
            predictor=stack.predictor.process.pid,
        )  # fmt: skip
        figure.data["pss_mb_2_workers"] = lifecycle.pss(stack.predictor)
        self.figures.append(figure)
        stack.stop()

    def lifecycle(self) -> None:
        """Measurements 3 and 5: cold start, memory as deployed, exit after SIGTERM when idle."""
        self.progress("predictor cold start, local model folder (1 worker, as deployed)")
        local: list[float] = []
        for attempt in range(self.plan.cold_starts):
            service = self._lone("predictor_service", {"MODEL_URI": str(self.model.folder)})
            local.append(lifecycle.start_timed(service))
            self.progress(f"  ready in {local[-1]:.3f} s")
            if attempt == 0:
                statuses = lifecycle.post_many(service.url + "/", self._envelopes("w", 300))
                self.memory["predictor"] = lifecycle.pss(service) | {
                    "after_pushes": len(statuses), "ok": statuses.count(204),
                }  # fmt: skip
                self.exits["predictor_idle_s"] = lifecycle.sigterm_exit_s(service)
            else:
                service.stop()
        cold = statistics.median(local)
        self.figures.append(Figure(
            "cold_start_local", "Predictor cold start, model in a local folder",
            f"process start to first /readyz 200 (polled every 5 ms), gunicorn with 1 worker, "
            f"{self._venv('predictor_service')}; median of {len(local)}",
            f"{cold:.2f} s (each: {', '.join(f'{x:.2f}' for x in local)})", "< 1.0 s",
            cold < 1.0, {"seconds": local, "median_s": cold},
        ))  # fmt: skip
        if self.plan.registry_cold_start:
            self.progress("predictor cold start from the MLflow registry")
            # The image's mlflow-skinny has no SQLite store: the dev virtualenv reads this one.
            service = self._lone("predictor_service", {"MODEL_URI": self.model.uri}, False)
            seconds = lifecycle.start_timed(service)
            service.stop()
            self.figures.append(Figure(
                "cold_start_registry", "Predictor cold start, model from the MLflow registry",
                f"{self.model.uri} on a local SQLite tracking store and artifact folder: "
                "resolves the alias, downloads the artifacts, loads; 1 worker; the dev "
                "virtualenv (full MLflow)", f"{seconds:.2f} s", "(say how long)", None,
                {"seconds": seconds},
            ))  # fmt: skip

    def end_to_end(self) -> None:
        """Measurements 2 and 4, then memory and SIGTERM of loaded processes."""
        self.progress("end to end: 2 backend processes, predictor with 2 workers")
        stack = self._stack(backends=2, predictor_workers=2)
        urls = [b.url for b in stack.backends]
        roots = self._roots(
            predictor=stack.predictor.process.pid,
            backend_a=stack.backends[0].process.pid,
            backend_b=stack.backends[1].process.pid,
        )
        run = dict(cpu_roots=roots, progress=self.progress)
        e2e.run_rate(urls, self.rides, self.expected, rate=50, duration_s=3, **run)  # warm-up
        for rate, seconds, make in (
            (100, self.plan.e2e_low_s, e2e.figure_100),
            (400, self.plan.e2e_high_s, e2e.figure_400),
        ):
            self.progress(f"end to end at {rate} rides/s for {seconds:g} s")
            found = e2e.run_rate(
                urls, self.rides, self.expected, rate=rate, duration_s=seconds, **run
            )
            self.figures.append(make(found, e2e.conditions(rate, seconds, 2, 2)))
        for workers in (1, 2) if self.plan.estimate_two_workers else (1,):
            # One worker is what a Cloud Run instance runs; a 2-vCPU instance may run two.
            self.progress(f"POST /estimate, 8 concurrent, backend with {workers} worker(s) (wrk)")
            backend = self._backend(stack, workers)
            self.figures.append(self._wrk_figure(
                f"estimate_{workers}",
                f"POST /estimate, 8 concurrent, {workers} worker{'s' if workers > 1 else ''}",
                ">= 2,000 req/s, p99 < 5 ms", 2000, 5, backend.url, "/estimate",
                [json.dumps(ride).encode() for ride in self.rides[:200]],
                f"one backend process (gunicorn master + {workers} worker x 16 threads, from "
                f"{self._venv('backend_service')})", backend=backend.process.pid,
            ))  # fmt: skip
            backend.stop()
        self.memory["backend_dev_venv_after_e2e"] = max(
            (lifecycle.pss(b) for b in stack.backends), key=lambda m: m["total"]
        )
        self.memory["predictor_2_workers_after_e2e"] = lifecycle.pss(stack.predictor)
        self.sigterms(stack)
        stack.stop()
        self.figures += self.memory_and_exit_figures()

    def _backend(self, stack: Stack, workers: int = 1) -> Service:
        """A lone backend on `stack`'s topics, whose predictor answers its rides."""
        backend = self._lone("backend_service", {"WEB_CONCURRENCY": str(workers)}, on=stack)
        backend.start()
        return backend

    def _rides_at_100(self, url: str, seconds: float) -> dict[str, Any]:
        return e2e.run_rate(
            [url], self.rides, self.expected, rate=100, duration_s=seconds, cpu_roots={},
            progress=lambda _: None,
        )  # fmt: skip

    def sigterms(self, stack: Stack) -> None:
        """Exit times of a fresh backend when idle, and of a predictor and backend under load."""
        backend = self._backend(stack)
        self._rides_at_100(backend.url, 5)
        self.memory["backend"] = lifecycle.pss(backend)
        self.exits["backend_idle_s"] = lifecycle.sigterm_exit_s(backend)
        if not self.plan.sigterm_under_load:
            return
        self.progress("SIGTERM under load")
        predictor = self._lone("predictor_service", {"MODEL_URI": str(self.model.folder)})
        predictor.start()
        envelopes = self._envelopes("s")
        seconds, result = lifecycle.sigterm_under_load(
            predictor,
            lambda: wrk.run(predictor.url, "/", envelopes, connections=8, duration_s=8),
        )
        self.exits["predictor_loaded_s"] = seconds
        self.exits["predictor_load"] = result
        backend = self._backend(stack)
        seconds, result = lifecycle.sigterm_under_load(
            backend, lambda: self._rides_at_100(backend.url, 6)
        )
        self.exits["backend_loaded_s"] = seconds
        if isinstance(result, dict):
            self.exits["backend_load"] = {
                k: result.get(k) for k in ("sent", "right", "crossed", "failed", "unanswered")
            }

    def memory_and_exit_figures(self) -> list[Figure]:
        predictor, backend = self.memory.get("predictor"), self.memory.get("backend")
        figures = []
        if predictor and backend:
            figures.append(Figure(
                "memory", "Memory (PSS, gunicorn master + workers)",
                "/proc/PID/smaps_rollup summed over the process tree once warm; "
                f"predictor from {self._venv('predictor_service')}, 1 worker (as deployed), "
                f"after 300 pushes; backend from {self._venv('backend_service')}, 1 worker, "
                "after 500 rides at 100/s",
                f"predictor {predictor['total']:.0f} MB, backend {backend['total']:.0f} MB",
                "predictor < 150 MB, backend < 80 MB",
                predictor["total"] < 150 and backend["total"] < 80, self.memory,
            ))  # fmt: skip
        idle = [self.exits.get("predictor_idle_s"), self.exits.get("backend_idle_s")]
        loaded = [self.exits.get("predictor_loaded_s"), self.exits.get("backend_loaded_s")]
        under_load = self.plan.sigterm_under_load
        result = f"idle: predictor {_seconds(idle[0])}, backend {_seconds(idle[1])}"
        if under_load:
            result += (
                f"; under load: predictor {_seconds(loaded[0])}, backend {_seconds(loaded[1])}"
            )
        met_idle = all(x is not None and x < 2 for x in idle)
        met_loaded = not under_load or all(x is not None and x < 10 for x in loaded)
        figures.append(Figure(
            "sigterm", "Exit after SIGTERM",
            "SIGTERM to the gunicorn master only, as Cloud Run sends it, until the process "
            "is gone; under load: wrk with 8 connections on a predictor, 100 rides/s on a "
            "backend, SIGTERM 3 s in",
            result, "< 2 s idle, < 10 s under load", met_idle and met_loaded, self.exits,
        ))  # fmt: skip
        return figures

    def emulator_limit(self) -> None:
        """Where the emulator is the limit: deliveries to a push endpoint that does nothing."""
        self.progress("the emulator alone: a no-op push endpoint")
        plan = self.plan
        found = emulator_limit.measure(
            self.emulator, self.workdir, plan.noop_rates, plan.noop_s, plan.idle_messages,
            self.progress,
        )  # fmt: skip
        idle, busiest = found["idle"]["latency_ms"], found["rates"][-1]
        self.figures.append(Figure(
            "emulator_noop", "Emulator alone: publish to a no-op push endpoint",
            f"messages stamped at publish, latency to arrival at an endpoint that answers 204 "
            f"at once; {plan.idle_messages} messages 1 s apart (idle subscription), then "
            f"{', '.join(f'{r:g}' for r in plan.noop_rates)}/s for {plan.noop_s:g} s each",
            f"idle p50 {idle.get('p50', 0):.0f} ms; at {busiest['rate']:g}/s "
            f"{busiest['delivered']}/{busiest['sent']} delivered, p50 "
            f"{busiest['latency_ms'].get('p50', 0):.1f} ms, p99 "
            f"{busiest['latency_ms'].get('p99', 0):.1f} ms",
            "(shows the floor the emulator sets)", None, found,
        ))  # fmt: skip

    def tracing_side_by_side(self) -> None:
        """Predictor CPU per push and backend CPU per ride, tracing off and on, interleaved."""
        rows = []
        for setting in self.tracing:
            label = "off" if setting == "off" else f"on, {self.trace_ratio:.0%} sampled"
            self.progress(f"tracing {label}: predictor push (wrk), then 100 rides/s end to end")
            # As deployed, with the local span file in Cloud Trace's place.
            traced = {"trace_exporter": "local", "trace_sample_ratio": self.trace_ratio}
            stack = self._stack(2, 2, **(traced if setting == "on" else {}))
            pids = {"predictor": stack.predictor.process.pid}
            pids |= {f"backend_{i}": b.process.pid for i, b in enumerate(stack.backends)}
            # The bench's envelopes ask for replies no backend listens for: the backends idle.
            push = direct.measure(
                stack.predictor.url, "/", self._envelopes("t"), runs=1,
                duration_s=self.plan.wrk_s, cpu_roots=self._roots(predictor=pids["predictor"]),
                progress=self.progress,
            )["median"]  # fmt: skip
            urls = [b.url for b in stack.backends]
            run = dict(cpu_roots=self._roots(**pids), progress=self.progress)
            e2e.run_rate(urls, self.rides, self.expected, rate=50, duration_s=3, **run)
            rides = e2e.run_rate(
                urls, self.rides, self.expected, rate=100, duration_s=self.plan.e2e_low_s, **run
            )
            stack.stop()
            rows.append(tracing_row(label, push, rides))
        self.figures.append(Figure(
            "tracing", "Tracing off and on, side by side",
            f"in this order: {', '.join(self.tracing)}; each on a fresh stack (predictor 2 "
            f"workers, 2 backends, rides in memory): wrk at 8 connections straight at the "
            f"predictor for {self.plan.wrk_s:g} s, then 100 rides/s end to end for "
            f"{self.plan.e2e_low_s:g} s; on: TRACE_EXPORTER=local, TRACE_SAMPLE_RATIO="
            f"{self.trace_ratio:g}",
            "; ".join(
                f"{r['tracing']}: predictor {r['predictor_cpu_ms_per_push']:.2f} ms/push, "
                f"backends {r['backend_cpu_ms_per_ride']:.2f} ms/ride" for r in rows
            ),
            data={"tracing": rows},
        ))  # fmt: skip

    def _stop_all(self) -> None:
        for service in self._services:
            service.stop(timeout_s=10)
        for stack in self._stacks:
            stack.stop()
        self._services, self._stacks = [], []

    def close(self) -> None:
        """Stop every process the bench started, by PID."""
        self._stop_all()
        if self.emulator is not None:
            self.emulator.stop()


def _seconds(value: float | None) -> str:
    return f"killed after {EXIT_WAIT_S:g} s" if value is None else f"{value:.2f} s"


def tracing_row(label: str, push: dict[str, Any], rides: dict[str, Any]) -> dict[str, Any]:
    """One tracing setting's row from a wrk run at the predictor and an open-loop ride run."""
    backends = sum(v for k, v in rides["server_cpu_cores"].items() if k.startswith("backend_"))
    predictor = push["server_cpu_cores"]["predictor"]
    return {
        "tracing": label,
        "predictor_cpu_ms_per_push": 1000 * predictor / max(push["throughput_rps"], 1e-9),
        "push_rps": push["throughput_rps"],
        "push_p50_ms": push["p50_ms"],
        "push_p99_ms": push["p99_ms"],
        "backend_cpu_ms_per_ride": 1000 * backends / rides["offered_per_s"],
        "ride_p50_ms": rides["latency_ms"].get("p50", 0.0),
        "ride_p99_ms": rides["latency_ms"].get("p99", 0.0),
        "rides_right": f"{rides['right']}/{rides['sent']}",
    }
