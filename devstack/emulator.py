"""Google's Pub/Sub emulator as a child process, and what every gcloud emulator here shares."""

import os
import shutil
from pathlib import Path

from .processes import Process, http_status, port_open, wait_until

START_TIMEOUT_S = 60  # a cold JVM here takes about 10 s
STOP_TIMEOUT_S = 10.0


def sdk_unavailable_reason(product: str, component: str) -> str | None:
    """Say why gcloud's `component` (the `product` emulator) cannot run here, or None if it can."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return f"gcloud is not installed (the {product} emulator comes with it)"
    if shutil.which("java") is None:
        return f"java is not installed (the {product} emulator needs a JRE)"
    sdk_root = Path(os.path.realpath(gcloud)).parent.parent
    if not (sdk_root / "platform" / component).is_dir():
        return f"the gcloud {component} component is not installed"
    return None


def unavailable_reason() -> str | None:
    """Say why the emulator cannot run on this machine, or None if it can."""
    return sdk_unavailable_reason("Pub/Sub", "pubsub-emulator")


class GcloudEmulator:
    """A gcloud emulator on a loopback port, in its own process group, stopped by its PID."""

    what: str  # "the Pub/Sub emulator", in messages
    log_name: str  # in the workdir

    def __init__(self, port: int, workdir: Path) -> None:
        self.port, self.address = port, f"127.0.0.1:{port}"
        self._workdir = workdir
        self._process: Process | None = None

    def start(self) -> None:
        raise NotImplementedError

    def _launch(self, command: str, flags: list[str], ready_path: str) -> None:
        """Start `gcloud <command>`; wait until `ready_path` answers 200, else stop it and raise."""
        argv = ["gcloud", *command.split(), f"--host-port={self.address}", *flags]
        argv += ["--quiet", "--verbosity=error"]
        env = os.environ | {"CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
        name = self.log_name.removesuffix(".log")
        self._process = process = Process(name, argv, env, self._workdir / self.log_name)
        process.start()

        def ready() -> bool:
            if not process.alive():
                raise RuntimeError(f"{self.what} exited:\n{process.log_tail()}")
            return http_status(f"http://{self.address}{ready_path}") == 200

        try:
            wait_until(ready, START_TIMEOUT_S, 0.2, f"{self.what} on {self.address}")
        except TimeoutError:
            tail = process.log_tail()
            self.stop()
            raise RuntimeError(f"{self.what} did not start:\n{tail}") from None

    def stop(self) -> None:
        """Stop gcloud and the emulator under it; return once its port is closed."""
        if self._process is None:
            return
        self._process.stop(timeout_s=10)

        # gcloud exits first; its JVM, signalled with it, may serve a moment longer.
        def closed() -> bool:
            return not port_open("127.0.0.1", self.port)

        try:
            wait_until(closed, STOP_TIMEOUT_S, interval_s=0.1)
        except TimeoutError:
            self._process.kill()  # the whole process group, the JVM included
            wait_until(closed, STOP_TIMEOUT_S, interval_s=0.1, what=f"{self.address} to close")
        self._process = None


class Emulator(GcloudEmulator):
    """Start, stop and restart the emulator on a loopback port with its own data folder."""

    what, log_name = "the Pub/Sub emulator", "emulator.log"

    def __init__(self, port: int, project: str, workdir: Path) -> None:
        super().__init__(port, workdir)
        self.project = project

    def start(self) -> None:
        data_dir = self._workdir / f"pubsub-{self.port}"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        flags = [f"--project={self.project}", f"--data-dir={data_dir}"]
        self._launch("beta emulators pubsub start", flags, f"/v1/projects/{self.project}/topics")
