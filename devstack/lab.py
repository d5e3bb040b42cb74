"""Where drills and tests run: an emulator, the real model, and fresh stacks on fresh topics.

A `Lab` starts what a scenario asks for (stacks, stacks behind a fault proxy, emulators of the
scenario's own) and stops all of it; the functions below do to one service what a platform
does: kill, terminate, restart, freeze (stall) and resume.
"""

import os
import signal
import time
from pathlib import Path
from typing import Any

from predictor_service.model import load_model

from .emulator import Emulator
from .firestore import FirestoreEmulator
from .load import Ride, make_rides
from .processes import free_port, port_open, wait_until
from .proxy import ProxyProcess
from .rides import expected_duration
from .stack import Service, Stack, start_isolated

EXIT_WAIT_S = 15.0


class Lab:
    """Build stacks for drills and stop every process they started, emulators included."""

    def __init__(self, emulator: Emulator, model_folder: Path, workdir: Path) -> None:
        self.emulator = emulator
        self.model_folder = model_folder
        self.model = load_model(str(model_folder))
        self.workdir = workdir
        self._stacks: list[Stack] = []
        self._proxies: list[ProxyProcess] = []
        self._emulators: list[Emulator] = []
        self._firestores: list[FirestoreEmulator] = []

    def expected(self, body: dict[str, Any]) -> float:
        """What the predictor must answer for a ride, from the same model and features."""
        return expected_duration(self.model, body)

    def rides(self, prefix: str, count: int) -> list[Ride]:
        return make_rides(prefix, count, self.expected)

    def own_emulator(self) -> Emulator:
        """Start an emulator for one scenario, which it may stop and restart at will."""
        emulator = Emulator(free_port(), self.emulator.project, self.workdir / "emulators")
        self._emulators.append(emulator)
        emulator.start()
        return emulator

    def own_firestore(self) -> FirestoreEmulator:
        """Start a Firestore emulator for one scenario; it keeps its documents across a restart."""
        firestore = FirestoreEmulator(
            free_port(), self.workdir / "emulators", keep_project=self.emulator.project
        )
        self._firestores.append(firestore)
        firestore.start()
        return firestore

    def stack(self, name: str, *, emulator: Emulator | None = None, **overrides: Any) -> Stack:
        """Start a predictor and backends (`isolated_settings`) serving the lab's model."""
        model = str(self.model_folder)
        stack = start_isolated(
            emulator or self.emulator, self.workdir / name, model_uri=model, **overrides
        )
        self._stacks.append(stack)
        return stack

    def proxied_stack(
        self,
        name: str,
        *,
        proxied: tuple[str, ...] = ("backend_service", "predictor_service"),
        **kwargs: Any,
    ) -> tuple[Stack, ProxyProcess]:
        """A stack whose `proxied` services reach Pub/Sub through a fault proxy (no fault set)."""
        proxy = ProxyProcess(self.emulator.address)
        self._proxies.append(proxy)
        hosts = {package: proxy.address for package in proxied}
        return self.stack(name, pubsub_hosts=hosts, **kwargs), proxy

    def close(self) -> None:
        for stack in reversed(self._stacks):
            stack.stop()
        for proxy in self._proxies:
            proxy.stop()
        for emulator in [*self._emulators, *self._firestores]:
            emulator.stop()


def kill(service: Service) -> None:
    """SIGKILL the service's whole process group and wait until its port is free."""
    service.process.kill()
    wait_until(lambda: not port_open("127.0.0.1", service.port), 10, what="the port to close")


def terminate(service: Service) -> float:
    """SIGTERM gunicorn's master only, as Cloud Run does; return the seconds it took to exit."""
    assert service.process.pid is not None
    started = time.monotonic()
    os.kill(service.process.pid, signal.SIGTERM)
    if service.process.wait(EXIT_WAIT_S) is None:
        service.process.kill()
        return float("inf")
    return time.monotonic() - started


def restart(service: Service) -> float:
    """Start the service again once its old port is free; return the seconds until ready."""
    wait_until(lambda: not port_open("127.0.0.1", service.port), 10, what="the port to close")
    started = time.monotonic()
    service.start()
    return time.monotonic() - started


def stall(service: Service) -> None:
    """Freeze every process of the service (SIGSTOP): connections open, nothing answers."""
    service.process.signal(signal.SIGSTOP)


def resume(service: Service) -> None:
    service.process.signal(signal.SIGCONT)
