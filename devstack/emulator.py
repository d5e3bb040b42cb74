"""Google's Pub/Sub emulator as a child process."""

import os
import shutil
import time
from pathlib import Path

from .processes import Process, http_status, wait_until

START_TIMEOUT_S = 60  # a cold JVM here takes about 10 s


def unavailable_reason() -> str | None:
    """Say why the emulator cannot run on this machine, or None if it can."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return "gcloud is not installed (the Pub/Sub emulator comes with it)"
    if shutil.which("java") is None:
        return "java is not installed (the Pub/Sub emulator needs a JRE)"
    sdk_root = Path(os.path.realpath(gcloud)).parent.parent
    if not (sdk_root / "platform" / "pubsub-emulator").is_dir():
        return "the gcloud pubsub-emulator component is not installed"
    return None


class Emulator:
    """Start, stop and restart the emulator on a loopback port with its own data folder."""

    def __init__(self, port: int, project: str, workdir: Path, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.project = host, port, project
        self.address = f"{host}:{port}"
        self._workdir = workdir
        self._process: Process | None = None

    def start(self) -> None:
        data_dir = self._workdir / f"pubsub-{self.port}"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        argv = [
            "gcloud",
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={self.address}",
            f"--project={self.project}",
            f"--data-dir={data_dir}",
            "--quiet",
            "--verbosity=error",
        ]
        env = os.environ | {"CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
        self._process = Process("pubsub-emulator", argv, env, self._workdir / "emulator.log")
        self._process.start()
        url = f"http://{self.address}/v1/projects/{self.project}/topics"
        try:
            wait_until(
                lambda: self._running() and http_status(url) == 200,
                START_TIMEOUT_S,
                interval_s=0.2,
                what=f"the Pub/Sub emulator on {self.address}",
            )
        except TimeoutError:
            tail = self._process.log_tail()
            self.stop()
            raise RuntimeError(f"the Pub/Sub emulator did not start:\n{tail}") from None

    def _running(self) -> bool:
        assert self._process is not None
        if not self._process.alive():
            raise RuntimeError(f"the Pub/Sub emulator exited:\n{self._process.log_tail()}")
        return True

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(timeout_s=10)
            self._process = None

    def restart(self, down_for_s: float = 0.0) -> None:
        """Stop, stay down for a while, and start again with empty state, as a fault would."""
        self.stop()
        time.sleep(down_for_s)
        self.start()
