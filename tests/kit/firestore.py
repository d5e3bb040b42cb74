"""The Firestore emulator for the tests: one per run, every worker's, stopped by its PID."""

from collections.abc import Iterator

import pytest

from devstack.firestore import FirestoreEmulator, unavailable_reason
from devstack.processes import free_port
from tests.kit.shared import emulators_folder, shared_emulator


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    """One Firestore emulator for the run; tests isolate themselves in their own collections."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"Firestore emulator unavailable: {reason}")
    root = emulators_folder(tmp_path_factory.getbasetemp())

    def start() -> FirestoreEmulator:
        instance = FirestoreEmulator(free_port(), root / "firestore")
        instance.start()
        try:
            warm_up(instance.address)
        except BaseException:
            instance.stop()
            raise
        return instance

    with shared_emulator(
        root, "firestore", start, lambda port: FirestoreEmulator(port, root / "firestore")
    ) as instance:
        yield instance


def warm_up(address: str) -> None:
    """Write, read and query once: a cold emulator takes a second or more over its first write."""
    from google.cloud import firestore  # here: unit-test sessions need not import it

    with pytest.MonkeyPatch.context() as env:
        env.setenv("FIRESTORE_EMULATOR_HOST", address)
        client = firestore.Client(project="warm-up")
    try:
        document = client.collection("warm-up").document("warm-up")
        document.set({"at": firestore.SERVER_TIMESTAMP}, timeout=30)
        document.get(timeout=30)
        list(client.collection("warm-up").order_by("at").limit(1).stream(timeout=30))
    finally:
        client.close()
