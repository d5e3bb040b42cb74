"""`python -m bench.models`: the predictor serving each kind of model, side by side in one run.

For each case: cold start (process start to the first answered push, 1 worker, as deployed),
PSS of the whole process tree once warm (after 300 pushes), and push requests at 8 concurrent
(wrk) on the bench's own emulator. Results in bench/results/models-<time>/.
"""

import argparse
import json
import logging
import os
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import registry
from devstack.emulator import unavailable_reason
from devstack.measure import load, machine
from devstack.processes import Process, free_port, port_open, wait_until
from devstack.pubsub import provision
from devstack.stack import ROOT, Service, isolated_settings

from . import direct, lifecycle, s3, setup, wrk

log = logging.getLogger("bench.models")
COURSE_NAME = "ride-duration-course"


@dataclass(frozen=True)
class Case:
    """One way of deploying the predictor: which model, from where, in which virtualenv."""

    name: str
    what: str
    image_like: bool  # the image's requirements only; False: the dev virtualenv
    throughput: bool
    env: dict[str, str] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        default="native,native-s3,native-s3-mlflow,native-registry,native-registry-http,course,"
        "course-run-id",
        help="comma-separated: native, native-s3, native-s3-mlflow, native-registry, "
        "native-registry-http, course, course-run-id",
    )
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--wrk-runs", type=int, default=3)
    parser.add_argument("--wrk-s", type=float, default=10.0)
    parser.add_argument("--label", default="", help="a word for the results folder's name")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


def course_model() -> dict[str, Any]:
    """Log the course's baseline into the bench registry once; describe it."""
    found = registry.lookup(setup.TRACKING_URI, COURSE_NAME, setup.ALIAS)
    if found is None:
        log.info("logging the course's baseline into the bench registry (once)")
        registry.train_course(setup.TRACKING_URI, str(setup.ARTIFACTS), COURSE_NAME, setup.ALIAS)
        found = registry.lookup(setup.TRACKING_URI, COURSE_NAME, setup.ALIAS)
        if found is None:
            raise RuntimeError("the course's baseline was logged but is not registered")
    return found


def tracking_server(workdir: Path) -> tuple[Process, str]:
    """`mlflow server` on the bench registry, as a deployed predictor reaches its registry."""
    port = free_port()
    argv = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", setup.TRACKING_URI,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server = Process("mlflow-server", argv, dict(os.environ), workdir / "mlflow-server.log")
    server.start()
    wait_until(lambda: port_open("127.0.0.1", port), 120, what="the MLflow tracking server")
    return server, f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class S3Model:
    """The bench model's folder on moto's S3 server, and the registry version whose source it is."""

    folder_uri: str
    registry_uri: str  # models:/ride-duration-s3@production
    version: str
    env: dict[str, str]  # the store's endpoint and keys


def cases(
    names: list[str], model: setup.BenchModel, tracking_url: str, store: S3Model | None = None
) -> list[Case]:
    """The cases asked for, with the model each one loads."""
    known: dict[str, Any] = {
        "native": lambda: Case(
            "native", f"project LightGBM booster, local folder ({model.version})", True, True,
            {"MODEL_URI": str(model.folder)},
        ),
        "native-s3": lambda: _s3_case("native-s3", store, tracking_url),
        "native-s3-mlflow": lambda: _s3_case("native-s3-mlflow", store, tracking_url),
        "native-registry": lambda: Case(
            "native-registry", f"project LightGBM booster, {model.uri}", False, False,
            {"MODEL_URI": model.uri},
        ),
        "native-registry-http": lambda: Case(
            "native-registry-http", f"project LightGBM booster, {model.uri} from `mlflow server`",
            True, False, {"MODEL_URI": model.uri, "MLFLOW_TRACKING_URI": tracking_url},
        ),
        "course": lambda: _course_case("course", local=True),
        "course-run-id": lambda: _course_case("course-run-id", local=False),
    }  # fmt: skip
    return [known[name]() for name in names]


def _s3_case(name: str, store: S3Model | None, tracking_url: str) -> Case:
    assert store is not None, "the S3 cases need the bench's S3 store"
    if name == "native-s3":
        # As a deploy pins it: the version's s3:// folder, copied with botocore alone.
        return Case(
            name, "project LightGBM booster, pinned s3:// folder (no MLflow)", True, False,
            {"MODEL_URI": store.folder_uri, "MODEL_VERSION": store.version, **store.env},
        )  # fmt: skip
    # The same folder through the registry and MLflow's download, as before the pin.
    return Case(
        name, f"project LightGBM booster, {store.registry_uri} from `mlflow server`, on S3",
        True, False,
        {"MODEL_URI": store.registry_uri, "MLFLOW_TRACKING_URI": tracking_url, **store.env},
    )  # fmt: skip


def _course_case(name: str, local: bool) -> Case:
    course = course_model()
    if local:
        folder = setup.ARTIFACTS / "models" / course["model_id"] / "artifacts"
        return Case(
            name, "course pipeline (DictVectorizer + LinearRegression), local folder", True, True,
            {"MODEL_URI": str(folder)},
        )  # fmt: skip
    return Case(
        name, "course pipeline, RUN_ID + MLFLOW_TRACKING_URI", False, False,
        {"MODEL_URI": "", "RUN_ID": course["run_id"]},
    )  # fmt: skip


class ModelBench:
    """Start, measure and stop one predictor per case on the bench's own emulator."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.services: list[Service] = []
        self.emulator: Any = None
        self.server: Process | None = None
        self.stores = ExitStack()

    def run(self, wanted: list[str]) -> list[dict[str, Any]]:
        model = setup.ensure_model(retrain=False, progress=log.info)
        url = ""
        if {"native-registry-http", "native-s3-mlflow"} & set(wanted):
            self.server, url = tracking_server(self.workdir)
        store = None
        if {"native-s3", "native-s3-mlflow"} & set(wanted):
            endpoint = self.stores.enter_context(s3.moto_store(self.workdir))
            folder_uri = s3.upload(endpoint, model.folder)
            registry_uri, version = s3.register(setup.TRACKING_URI, folder_uri)
            store = S3Model(folder_uri, registry_uri, version, s3.env(endpoint))
        chosen = cases(wanted, model, url, store)
        self.python = setup.image_python("predictor_service", log.info)
        rides = setup.sample_rides(200)
        self.envelopes = [setup.ride_envelope(r, f"m{i}") for i, r in enumerate(rides)]
        self.emulator = setup.start_emulator(self.workdir)
        self.topics = isolated_settings(self.emulator, self.workdir, backends=0)
        provision(self.topics.topology, self.emulator.address)  # nothing listens at its push
        # The emulator's JVM compiles its publish path under the first load: warm it first.
        warm = self._predictor(chosen[0])
        lifecycle.start_timed(warm)
        if wrk.available():
            wrk.run(warm.url, "/", self.envelopes, connections=8, duration_s=5)
        warm.stop()
        return [self.measure(case) for case in chosen]

    def _predictor(self, case: Case) -> Service:
        python = self.python if case.image_like else None
        env = setup.topics(self.topics) | case.env
        service = setup.service("predictor_service", self.emulator, self.workdir, env, python)
        self.services.append(service)
        return service

    def measure(self, case: Case) -> dict[str, Any]:
        log.info("%s: %s", case.name, case.what)
        row: dict[str, Any] = {"case": case.name, "what": case.what, "cold_start_s": []}
        row["venv"] = "image-like" if case.image_like and self.python else "dev"
        for attempt in range(self.args.cold_starts):
            service = self._predictor(case)
            try:
                row["cold_start_s"].append(lifecycle.first_push_timed(service, self.envelopes[0]))
            except (RuntimeError, TimeoutError) as err:
                row["error"] = str(err)[-600:]
                log.info("  did not start: %s", row["error"])
                return row
            download = download_s(service)
            if download is not None:
                row.setdefault("download_s", []).append(download)
            log.info(
                "  first push answered in %.3f s (download %s s)", row["cold_start_s"][-1], download
            )
            if attempt == 0:
                statuses = lifecycle.post_many(service.url + "/", self.envelopes[:100] * 3)
                row["pushes_ok"] = statuses.count(204)
                row["pss_mb"] = lifecycle.pss(service)
                log.info("  PSS %.1f MB after %d pushes", row["pss_mb"]["total"], len(statuses))
                if case.throughput and wrk.available():
                    found = direct.measure(
                        service.url, "/", self.envelopes, runs=self.args.wrk_runs,
                        duration_s=self.args.wrk_s,
                        cpu_roots={"predictor": [service.process.pid or 0]}, progress=log.info,
                    )  # fmt: skip
                    row["push"] = found
            service.stop()
        row["cold_start_median_s"] = statistics.median(row["cold_start_s"])
        return row

    def close(self) -> None:
        for service in self.services:
            service.stop(timeout_s=10)
        if self.server is not None:
            self.server.stop()
        self.stores.close()
        if self.emulator is not None:
            self.emulator.stop()


def download_s(service: Service) -> float | None:
    """The seconds the predictor's download child took, from its start-up log; None: none ran."""
    for line in service.process.log_tail(200).splitlines():
        if '"downloaded model artifacts"' in line:
            return float(json.loads(line)["seconds"])
    return None


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| Case | Start to first answered push, median (each) | PSS after 300 pushes "
        "| Push, 8 concurrent |",
        "|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['what']} | refused to start | - | - |")
            continue
        each = ", ".join(f"{s:.2f}" for s in row["cold_start_s"])
        if row.get("download_s"):
            rest = [c - d for c, d in zip(row["cold_start_s"], row["download_s"], strict=True)]
            each += f"; download {statistics.median(row['download_s']):.2f} s, the rest "
            each += f"{statistics.median(rest):.2f} s"
        pss = row["pss_mb"]
        push = "-"
        if "push" in row:
            best = row["push"]["median"]
            runs = ", ".join(f"{r['throughput_rps']:,.0f}" for r in row["push"]["runs"])
            push = (
                f"{best['throughput_rps']:,.0f} req/s, p50 {best['p50_ms']:.1f} ms, "
                f"p99 {best['p99_ms']:.1f} ms (runs {runs})"
            )
        lines.append(
            f"| {row['what']} ({row['venv']} venv) | {row['cold_start_median_s']:.2f} s ({each}) "
            f"| {pss['total']:.0f} MB ({pss['processes']:.0f} processes) | {push} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s", stream=sys.stdout)
    reason = unavailable_reason()
    if reason:
        log.error("cannot run: the Pub/Sub emulator is unavailable: %s", reason)
        return 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"models-{stamp}" + (f"-{args.label}" if args.label else "")
    workdir = setup.WORKDIR / "runs" / name
    workdir.mkdir(parents=True, exist_ok=True)
    run = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine()}
    bench = ModelBench(args, workdir)
    try:
        rows = bench.run(args.cases.split(","))
    finally:
        bench.close()
    run |= {"load_after": load(), "rows": rows}
    folder = args.out / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(run, indent=2, default=str))
    (folder / "report.md").write_text(table(rows) + "\n")
    log.info("load average before %s, after %s", run["machine"]["loadavg"], run["load_after"])  # type: ignore[index]
    log.info("wrote %s\n%s", folder, table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
