"""Google's Firestore emulator (Native mode) as a child process."""

import json
import shutil
import urllib.request
from pathlib import Path

from .emulator import GcloudEmulator, sdk_unavailable_reason

EXPORT_TIMEOUT_S = 30


def unavailable_reason() -> str | None:
    """Say why the Firestore emulator cannot run on this machine, or None if it can."""
    return sdk_unavailable_reason("Firestore", "cloud-firestore-emulator")


class FirestoreEmulator(GcloudEmulator):
    """Start and stop the emulator on a loopback port; its data lives in memory.

    Clients reach it through FIRESTORE_EMULATOR_HOST=`address`; it serves every project. With
    `keep_project`, that project's documents are exported when it stops and imported when it
    starts again, as the real service keeps them through an outage.
    """

    what, log_name = "the Firestore emulator", "firestore-emulator.log"

    def __init__(self, port: int, workdir: Path, keep_project: str | None = None) -> None:
        super().__init__(port, workdir)
        self._keep_project = keep_project
        self._export = workdir / f"firestore-{port}-export"

    def stop(self) -> None:
        if self._keep_project is not None and self._process is not None:
            self._export_documents(self._keep_project)
        super().stop()

    def _export_documents(self, project: str) -> None:
        """Write the project's documents out through the emulator's export endpoint."""
        shutil.rmtree(self._export, ignore_errors=True)
        self._export.mkdir(parents=True)
        body = {
            "database": f"projects/{project}/databases/(default)",
            "export_directory": str(self._export),
        }
        request = urllib.request.Request(
            f"http://{self.address}/emulator/v1/projects/{project}:export",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=EXPORT_TIMEOUT_S):
            pass

    def _exported(self) -> Path | None:
        """The metadata file of the last export, if there is one."""
        found = sorted(self._export.glob("*/*.overall_export_metadata"))
        return found[-1] if found else None

    def start(self) -> None:
        flags = ["--database-mode=firestore-native"]
        if self._keep_project is not None and (exported := self._exported()) is not None:
            flags.append(f"--import-data={exported}")
        self._launch("emulators firestore start", flags, "/")  # "/" answers "Ok" once it serves
