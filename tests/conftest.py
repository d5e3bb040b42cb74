"""Fixtures shared by every test package: a trained model, the emulators, a running stack."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.emulator import Emulator, unavailable_reason
from devstack.processes import free_port
from devstack.stack import Stack, start_isolated
from tests.kit.firestore import firestore_emulator  # noqa: F401 - a fixture, registered here
from tests.kit.trained import TrainedModel


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """Train the real model on the project's TLC data once per session (about 15 s)."""
    from training.train import main as train

    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    figures = train(
        ["--tracking-uri", tracking_uri, "--artifact-location", str(root / "artifacts")]
    )
    folder = next((root / "artifacts").glob("**/MLmodel")).parent
    return TrainedModel(tracking_uri, "models:/ride-duration@production", folder, figures)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One Pub/Sub emulator for the session; tests isolate themselves with their own topics."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"Pub/Sub emulator unavailable: {reason}")
    instance = Emulator(free_port(), "test-project", tmp_path_factory.mktemp("emulator"))
    instance.start()
    yield instance
    instance.stop()


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
