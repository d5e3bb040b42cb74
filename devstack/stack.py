"""The whole system on loopback: emulator, topics, model, predictor and backend processes."""

import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .emulator import Emulator, GcloudEmulator
from .firestore import FirestoreEmulator
from .processes import Process, free_port, http_status, port_open, wait_until
from .pubsub import Topology, provision

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 90  # a predictor loading from the MLflow registry imports MLflow first


@dataclass(frozen=True)
class Settings:
    """Everything `make run` lets a user change, read from the environment by `from_env`."""

    project: str = "local-project"
    emulator_port: int = 8085
    predictor_port: int = 8081
    backend_ports: tuple[int, ...] = (8080,)
    backend_workers: int = 2
    predictor_workers: int = 2
    rides_topic: str = "ride-data-push"
    results_topic: str = "ride-duration-pull"
    dead_letter_topic: str = "ride-data-dead-letter"
    push_subscription: str = "ride-data-push-sub"
    dead_letter_subscription: str = "ride-data-dead-letter-sub"
    tracking_uri: str = f"sqlite:///{ROOT / '.local' / 'mlflow.db'}"
    artifact_location: str = str(ROOT / ".local" / "mlartifacts")
    model_name: str = "ride-duration"
    model_alias: str = "production"
    model_uri: str | None = None  # default: models:/<model_name>@<model_alias>
    workdir: Path = ROOT / ".local" / "run"
    service_env: dict[str, str] = field(default_factory=dict)
    # The gunicorn app spec of the predictor; fault drills wrap the factory (faults.slow_predictor).
    predictor_app: str = "predictor_service:create_app()"
    # Where a service package reaches Pub/Sub instead of the emulator itself, by package name:
    # fault drills put a proxy there (devstack.proxy). Provisioning and tools stay direct.
    pubsub_hosts: dict[str, str] = field(default_factory=dict)
    # Where the backends keep rides: "firestore" (a Firestore emulator of the stack's own, or
    # the one given to Stack) as deployed, or "memory", each backend process its own.
    ride_store: str = "firestore"
    recorder_subscription: str = "ride-duration-pull-recorder"
    rides_collection: str = "rides"
    firestore_port: int = 8086
    # Spans of every ride, kept in workdir/spans.jsonl for `make trace` ("none": no spans).
    trace_exporter: str = "local"
    trace_sample_ratio: float = 1.0

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> "Settings":
        """Read the overrides `make run` documents; unset variables keep the defaults."""
        d = cls()
        get = environ.get
        return cls(
            project=get("PROJECT_ID", d.project),
            emulator_port=int(get("PUBSUB_EMULATOR_PORT", d.emulator_port)),
            predictor_port=int(get("PREDICTOR_PORT", d.predictor_port)),
            backend_ports=(int(get("BACKEND_PORT", d.backend_ports[0])),),
            backend_workers=int(get("BACKEND_WORKERS", d.backend_workers)),
            predictor_workers=int(get("PREDICTOR_WORKERS", d.predictor_workers)),
            # BACKEND_PUSH_STREAM and BACKEND_PULL_STREAM, the earlier names, still count.
            rides_topic=get("RIDES_TOPIC") or get("BACKEND_PUSH_STREAM") or d.rides_topic,
            results_topic=get("RESULTS_TOPIC") or get("BACKEND_PULL_STREAM") or d.results_topic,
            dead_letter_topic=get("DEAD_LETTER_TOPIC", d.dead_letter_topic),
            push_subscription=get("PUSH_SUBSCRIPTION", d.push_subscription),
            dead_letter_subscription=get("DEAD_LETTER_SUBSCRIPTION", d.dead_letter_subscription),
            tracking_uri=get("MLFLOW_TRACKING_URI", d.tracking_uri),
            artifact_location=get("MLFLOW_ARTIFACT_LOCATION", d.artifact_location),
            # RUN_ID, the seed's way, as the predictor reads it: MODEL_URI wins.
            model_uri=get("MODEL_URI") or (f"runs:/{r}/model" if (r := get("RUN_ID")) else None),
            ride_store=get("RIDE_STORE", d.ride_store),
            recorder_subscription=get("RECORDER_SUBSCRIPTION", d.recorder_subscription),
            firestore_port=int(get("FIRESTORE_EMULATOR_PORT", d.firestore_port)),
            trace_exporter=get("TRACE_EXPORTER", d.trace_exporter),
            trace_sample_ratio=float(get("TRACE_SAMPLE_RATIO", d.trace_sample_ratio)),
        )

    @property
    def span_file(self) -> Path:
        """Where the stack's services append their spans, read by `python -m devstack.timeline`."""
        return self.workdir / "spans.jsonl"

    @property
    def topology(self) -> Topology:
        names = ("rides_topic", "results_topic", "dead_letter_topic", "push_subscription",
                 "dead_letter_subscription")  # fmt: skip
        recorder = self.recorder_subscription if self.ride_store == "firestore" else None
        return Topology(
            self.project, f"http://127.0.0.1:{self.predictor_port}/",
            recorder_subscription=recorder, **{name: getattr(self, name) for name in names},
        )  # fmt: skip


class PortInUse(RuntimeError):
    """Another process holds the port a service was given; start it again on another."""


class Service:
    """One service under gunicorn, as its container runs it, on a loopback port."""

    def __init__(
        self, package: str, port: int, env: dict[str, str], log_path: Path, app: str | None = None
    ) -> None:
        self.package, self.port = package, port
        self.url = f"http://127.0.0.1:{port}"
        conf = str(ROOT / package / "gunicorn_conf.py")
        argv = [sys.executable, "-m", "gunicorn", "-c", conf, app or f"{package}:create_app()"]
        env = env | {"HOST": "127.0.0.1", "PORT": str(port), "PYTHONPATH": str(ROOT)}
        self.process = Process(f"{package}:{port}", argv, env, log_path)

    def start(self, wait: bool = True, timeout_s: float = READY_TIMEOUT_S) -> None:
        if port_open("127.0.0.1", self.port):
            raise PortInUse(f"port {self.port} is already in use; {self.package} cannot bind")
        self.process.start()
        if wait:
            self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S, interval_s: float = 0.05) -> None:
        """Poll /readyz every `interval_s` until it answers 200; raise if the process exits."""

        def ready() -> bool:
            if not self.process.alive():
                tail = self.process.log_tail()
                # Gunicorn's own words when another process bound the port first.
                error = PortInUse if "Connection in use" in tail else RuntimeError
                raise error(f"{self.package} exited:\n{tail}")
            return http_status(f"{self.url}/readyz") == 200

        wait_until(ready, timeout_s, interval_s, what=f"{self.package} on {self.url}")

    def stop(self, timeout_s: float = 15.0) -> float:
        return self.process.stop(timeout_s)


class Stack:
    """Start the parts in dependency order and stop them all, in reverse, by PID."""

    def __init__(
        self,
        settings: Settings,
        progress: Callable[[str], None] = lambda _: None,
        emulator: Emulator | None = None,
        firestore: FirestoreEmulator | None = None,
    ) -> None:
        """Use the emulators given (already running, and left running), else own them."""
        self.settings = settings
        self.progress = progress
        settings.workdir.mkdir(parents=True, exist_ok=True)
        self.owned: list[GcloudEmulator] = []  # the emulators this stack starts and stops
        if emulator is None:
            emulator = Emulator(settings.emulator_port, settings.project, settings.workdir)
            self.owned.append(emulator)
        if firestore is None and settings.ride_store == "firestore":
            firestore = FirestoreEmulator(settings.firestore_port, settings.workdir)
            self.owned.append(firestore)
        self.emulator, self.firestore, self.address = emulator, firestore, emulator.address
        self.predictor = Service(
            "predictor_service",
            settings.predictor_port,
            self._env("predictor_service", settings.predictor_workers, model=True),
            settings.workdir / "predictor.log",
            app=settings.predictor_app,
        )
        self.backends = [
            Service(
                "backend_service",
                port,
                self._env("backend_service", settings.backend_workers),
                settings.workdir / f"backend-{port}.log",
            )
            for port in settings.backend_ports
        ]

    @property
    def model_uri(self) -> str:
        s = self.settings
        return s.model_uri or f"models:/{s.model_name}@{s.model_alias}"

    def _env(self, package: str, workers: int, model: bool = False) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ) | {
            "PUBSUB_EMULATOR_HOST": s.pubsub_hosts.get(package, self.address),
            "PROJECT_ID": s.project,
            "RIDES_TOPIC": s.rides_topic,
            "RESULTS_TOPIC": s.results_topic,
            "DEAD_LETTER_TOPIC": s.dead_letter_topic,
            "WEB_CONCURRENCY": str(workers),
            "RIDE_STORE": s.ride_store,
            "TRACE_EXPORTER": s.trace_exporter,
            "TRACE_SAMPLE_RATIO": str(s.trace_sample_ratio),
            "TRACE_FILE": str(s.span_file),
        }
        if s.ride_store == "firestore" and self.firestore is not None:
            env |= {
                "FIRESTORE_EMULATOR_HOST": self.firestore.address,
                "RECORDER_SUBSCRIPTION": s.recorder_subscription,
                "RIDES_COLLECTION": s.rides_collection,
            }
        if model:
            env |= {"MODEL_URI": self.model_uri, "MLFLOW_TRACKING_URI": s.tracking_uri}
        return env | s.service_env

    def start(self) -> None:
        try:
            for owned in self.owned:
                self.progress(f"starting {owned.what} on {owned.address}")
                owned.start()
            self.ensure_model()
            self.progress("creating topics and subscriptions")
            self.provision()
            self.progress(
                f"starting the predictor on {self.predictor.url}, loading {self.model_uri}"
            )
            self.predictor.start()
            for backend in self.backends:
                self.progress(f"starting the backend on {backend.url}")
                backend.start()
        except BaseException:
            self.stop()
            raise

    def ensure_model(self) -> None:
        """Train and register the default model if the registry has none under the alias."""
        s = self.settings
        if s.model_uri and not s.model_uri.startswith(f"models:/{s.model_name}@"):
            return
        found = registry.lookup(s.tracking_uri, s.model_name, s.model_alias)
        if found is not None:
            self.progress(f"model {found['uri']} is registered")
            return
        self.progress("no model registered yet: training the default model (about 20 s)")
        registry.train(s.tracking_uri, s.artifact_location, s.model_name, s.model_alias)

    def provision(self) -> None:
        provision(self.settings.topology, self.address)

    def stop(self) -> None:
        for service in [*self.backends, self.predictor]:
            service.stop()
        for emulator in self.owned:
            emulator.stop()


def isolated_settings(
    emulator: Emulator,
    workdir: Path,
    *,
    backends: int = 1,
    backend_workers: int = 1,
    ride_store: str = "memory",
    **overrides: Any,
) -> Settings:
    """Settings on free loopback ports and topics of their own, on an emulator already running.

    Rides stay in each backend process unless `ride_store="firestore"`: then start the stack
    with a Firestore emulator (`start_isolated(..., firestore=...)`).
    """
    suffix = uuid.uuid4().hex[:8]
    fields: dict[str, Any] = {
        "project": emulator.project,
        "emulator_port": emulator.port,
        "predictor_port": free_port(),
        "backend_ports": tuple(free_port() for _ in range(backends)),
        "backend_workers": backend_workers,
        "ride_store": ride_store,
        "recorder_subscription": f"results-recorder-{suffix}",
        "rides_collection": f"rides-{suffix}",  # stacks may share one Firestore emulator
        "predictor_workers": 1,
        "rides_topic": f"rides-{suffix}",
        "results_topic": f"results-{suffix}",
        "dead_letter_topic": f"dead-letters-{suffix}",
        "push_subscription": f"rides-push-{suffix}",
        "dead_letter_subscription": f"dead-letters-sub-{suffix}",
        "workdir": workdir / f"stack-{suffix}",
        "trace_exporter": "none",  # a test or bench that reads spans asks for "local"
    }
    return Settings(**(fields | overrides))


def start_isolated(
    emulator: Emulator,
    workdir: Path,
    attempts: int = 3,
    firestore: FirestoreEmulator | None = None,
    **kwargs: Any,
) -> Stack:
    """Start a stack with `isolated_settings`; pick fresh ports if another process took one."""
    for attempt in range(1, attempts + 1):
        # free_port() only says a port was free a moment ago: on a busy machine another
        # process may take it before gunicorn binds it.
        settings = isolated_settings(emulator, workdir, **kwargs)
        stack = Stack(settings, emulator=emulator, firestore=firestore)
        try:
            stack.start()  # stops what it started if it fails
        except PortInUse:
            if attempt == attempts:
                raise
            continue
        return stack
    raise AssertionError("unreachable")
