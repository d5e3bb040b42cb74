"""One emulator for all the pytest-xdist workers of a run, instead of one per worker.

The first worker that needs it starts it; the others attach to it by address. Each worker says
when it is done with it, and the last one stops it by its PID (the process group, JVM included),
whichever worker started it. Tests isolate themselves on it by names of their own, as they did
on an emulator per worker. A lock file orders the workers; the run's common folder holds the
state: which address, which PID, which workers still use it.
"""

import fcntl
import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from devstack.emulator import STOP_TIMEOUT_S, GcloudEmulator
from devstack.processes import port_open, wait_until

E = TypeVar("E", bound=GcloudEmulator)


def run_folder(base: Path) -> Path:
    """The folder every worker of this run shares (the run's own when there are no workers)."""
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def emulators_folder(base: Path) -> Path:
    """Where the run's shared emulators keep their state and logs."""
    folder = run_folder(base) / "shared-emulators"
    folder.mkdir(exist_ok=True)
    return folder


@contextmanager
def _locked(root: Path, name: str) -> Iterator[Path]:
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield root / f"{name}.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(pid: int, host: str, port: int) -> None:
    """Stop an emulator another worker started: SIGTERM its group, SIGKILL if its port stays."""

    def closed() -> bool:
        return not port_open(host, port)

    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            return
        try:
            wait_until(closed, STOP_TIMEOUT_S, interval_s=0.1)
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"the emulator of PID {pid} still listens on {host}:{port}")


# Emulator processes this worker started and left running for the others.
_HANDED_OVER: list[Any] = []


@contextmanager
def shared_emulator(
    root: Path, name: str, start: Callable[[], E], attach: Callable[[int], E]
) -> Iterator[E]:
    """Yield the run's emulator `name`: started with `start()` if none runs yet, else
    `attach(port)`, a handle on the running one that does not own (nor stop) its process."""
    with _locked(root, name) as state_file:
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        if state and port_open("127.0.0.1", state["port"]):
            instance = attach(state["port"])
        else:
            instance = start()
            assert instance._process is not None and instance._process.pid is not None
            state = {"pid": instance._process.pid, "port": instance.port, "users": []}
        state["users"].append(os.getpid())
        state_file.write_text(json.dumps(state))
    try:
        yield instance
    finally:
        with _locked(root, name) as state_file:
            state = json.loads(state_file.read_text())
            state["users"] = [p for p in state["users"] if p != os.getpid() and _alive(p)]
            if state["users"]:
                state_file.write_text(json.dumps(state))
                if instance._process is not None:
                    # Others still use it; the last of them stops it by PID. Keep this worker's
                    # handle alive, so it is not collected while its process runs.
                    _HANDED_OVER.append(instance._process)
            else:
                state_file.unlink()
                if instance._process is not None:
                    instance.stop()
                else:
                    _stop_group(state["pid"], "127.0.0.1", instance.port)


def stop_leftovers(root: Path) -> list[str]:
    """Stop the emulators a run's workers left running (a worker that crashed says nothing);
    return what was stopped. For the process that ran the workers, once they are all gone."""
    stopped = []
    for state_file in root.glob("*.json"):
        try:
            state = json.loads(state_file.read_text())
            pid, port = int(state["pid"]), int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if port_open("127.0.0.1", port):
            _stop_group(pid, "127.0.0.1", port)
            stopped.append(f"{state_file.stem} (PID {pid})")
        state_file.unlink(missing_ok=True)
    return stopped
