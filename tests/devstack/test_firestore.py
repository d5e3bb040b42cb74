"""devstack.firestore: why the Firestore emulator cannot run, and stopping it by its PID."""

from pathlib import Path

import pytest

from devstack import emulator as pubsub
from devstack.firestore import FirestoreEmulator, unavailable_reason
from devstack.processes import free_port, http_status, process_tree, wait_until


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def path_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Set PATH to a fake SDK (gcloud linked from bin/, as /usr/bin/gcloud is) and java."""

    def use(gcloud: bool = True, java: bool = True, components: tuple[str, ...] = ()) -> None:
        sdk, bin_dir = tmp_path / "sdk", tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        if gcloud:
            (bin_dir / "gcloud").symlink_to(_executable(sdk / "bin" / "gcloud"))
        if java:
            _executable(bin_dir / "java")
        for component in components:
            (sdk / "platform" / component).mkdir(parents=True)
        monkeypatch.setenv("PATH", str(bin_dir))

    return use


def test_without_gcloud(path_of):
    path_of(gcloud=False)
    assert unavailable_reason() == "gcloud is not installed (the Firestore emulator comes with it)"


def test_without_java(path_of):
    path_of(java=False, components=("cloud-firestore-emulator",))
    assert unavailable_reason() == "java is not installed (the Firestore emulator needs a JRE)"


def test_without_the_component_even_with_the_pubsub_one(path_of):
    path_of(components=("pubsub-emulator",))
    assert unavailable_reason() == "the gcloud cloud-firestore-emulator component is not installed"
    assert pubsub.unavailable_reason() is None


def test_with_everything_it_can_run(path_of):
    path_of(components=("cloud-firestore-emulator",))
    assert unavailable_reason() is None
    assert pubsub.unavailable_reason() == "the gcloud pubsub-emulator component is not installed"


@pytest.mark.emulator
def test_start_serves_and_stop_ends_the_whole_process_group(tmp_path: Path):
    if reason := unavailable_reason():
        pytest.skip(f"Firestore emulator unavailable: {reason}")
    emulator = FirestoreEmulator(free_port(), tmp_path)
    emulator.start()
    try:
        assert emulator._process is not None and emulator._process.pid is not None
        tree = process_tree(emulator._process.pid)
        assert len(tree) >= 2  # gcloud and the emulator's JVM under it
        assert http_status(f"http://{emulator.address}/") == 200
    finally:
        emulator.stop()
    assert http_status(f"http://{emulator.address}/") is None
    # stop() returns once gcloud is gone; its JVM, signalled with it, ends a moment later.
    wait_until(lambda: not _running(tree), 10, what="the emulator's processes to end")


def _running(pids: list[int]) -> list[int]:
    """The PIDs that still run (zombies do not: PID 1 here may reap them late)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running
