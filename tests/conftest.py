"""Fixtures shared by every test package: a trained model, the emulators, a running stack."""

import fcntl
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from devstack.emulator import Emulator, unavailable_reason
from devstack.processes import free_port
from devstack.stack import Stack, start_isolated
from tests.kit.firestore import firestore_emulator  # noqa: F401 - a fixture, registered here
from tests.kit.schedule import longest_first
from tests.kit.shared import emulators_folder, shared_emulator, stop_leftovers
from tests.kit.trained import TrainedModel

# No per-example deadline: a property test asserts behaviour, never speed, and parallel workers
# on a busy machine make any deadline a coin toss.
settings.register_profile("project", deadline=None)
settings.load_profile("project")


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """Train the real model on the project's TLC data once per run (about 15 s).

    Under pytest-xdist the workers share one training: the first to take the lock trains into
    the run's common folder, the others wait for it and read what it wrote.
    """
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "trained-model"
    root.mkdir(exist_ok=True)
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        figures_file = root / "figures.json"
        if not figures_file.exists():
            from training.train import main as train

            figures = train(
                [
                    "--tracking-uri",
                    f"sqlite:///{root / 'mlflow.db'}",
                    "--artifact-location",
                    str(root / "artifacts"),
                ]
            )
            figures_file.write_text(json.dumps(figures))
    folder = next((root / "artifacts").glob("**/MLmodel")).parent
    return TrainedModel(
        f"sqlite:///{root / 'mlflow.db'}",
        "models:/ride-duration@production",
        folder,
        json.loads(figures_file.read_text()),
    )


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One Pub/Sub emulator for the run, every worker's; tests isolate themselves with their own
    topics. Scenarios that stop or restart an emulator start one of their own (devstack.lab)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"Pub/Sub emulator unavailable: {reason}")
    root = emulators_folder(tmp_path_factory.getbasetemp())

    def start() -> Emulator:
        instance = Emulator(free_port(), "test-project", root / "pubsub")
        instance.start()
        return instance

    with shared_emulator(
        root, "pubsub", start, lambda port: Emulator(port, "test-project", root / "pubsub")
    ) as instance:
        yield instance


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(
    emulator: Emulator, trained_model: TrainedModel, tmp_path: Path
) -> Iterator[StackFactory]:
    """Build stacks on the session emulator with topics of their own; stop them afterwards."""
    stacks: list[Stack] = []

    def build(backends: int = 1, backend_workers: int = 1, **overrides: object) -> Stack:
        stack = start_isolated(
            emulator,
            tmp_path,
            backends=backends,
            backend_workers=backend_workers,
            tracking_uri=trained_model.tracking_uri,
            model_uri=trained_model.model_uri,
            **overrides,
        )
        stacks.append(stack)
        return stack

    yield build
    for stack in reversed(stacks):
        stack.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the full-length drills to `make faults` unless -m asks for them; refuse a run where
    two tests share an id (pytest-xdist would run one of them only); on pytest-xdist's workers,
    order the files longest first (tests.kit.schedule)."""
    shared = sorted(nodeid for nodeid, n in Counter(i.nodeid for i in items).items() if n > 1)
    if shared:
        raise pytest.UsageError(f"tests sharing an id (give each its own): {shared}")
    if "drill" not in (config.getoption("markexpr") or ""):
        drills = [item for item in items if item.get_closest_marker("drill")]
        if drills:
            config.hook.pytest_deselected(items=drills)
            items[:] = [item for item in items if not item.get_closest_marker("drill")]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items[:] = longest_first(items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Where pytest-xdist ran the workers: stop any shared emulator they left running (the last
    worker to use one stops it; a worker that crashed could not)."""
    config = session.config
    if not config.pluginmanager.has_plugin("dsession") or not hasattr(config, "_tmp_path_factory"):
        return
    folder = config._tmp_path_factory.getbasetemp() / "shared-emulators"
    if folder.is_dir():
        for what in stop_leftovers(folder):
            session.config.get_terminal_writer().line(f"stopped a leftover emulator: {what}")
