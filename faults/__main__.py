"""`python -m faults`: run the fault drills on a stack of their own and print the result table."""

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from devstack.emulator import Emulator, unavailable_reason
from devstack.lab import Lab
from devstack.processes import free_port
from devstack.stack import ROOT, Settings, Stack

from . import soak, suite
from .report import table

log = logging.getLogger("faults")


def model_folder(workdir: Path) -> Path:
    """The registered default model as a local folder, trained first if there is none."""
    settings = Settings(workdir=workdir)
    Stack(settings, progress=log.info).ensure_model()
    os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    import mlflow.artifacts

    uri = f"models:/{settings.model_name}@{settings.model_alias}"
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(workdir)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", help=f"default: all of {', '.join(suite.SCENARIOS)}"
    )
    parser.add_argument("--soak-seconds", type=float, help="run only the soak, this long")
    parser.add_argument("--rate", type=float, default=20, help="soak rides per second")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[faults] %(message)s", stream=sys.stderr)
    if reason := unavailable_reason():
        log.error("cannot run the drills: %s", reason)
        return 2
    unknown = set(args.scenarios) - set(suite.SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    workdir = Path(tempfile.mkdtemp(prefix="faults-", dir=ROOT / ".local"))
    emulator = Emulator(free_port(), "faults-project", workdir)
    emulator.start()
    lab = None
    try:
        lab = Lab(emulator, model_folder(workdir / "model"), workdir)
        if args.soak_seconds:
            seconds, rate = args.soak_seconds, args.rate
            results = [suite.run("soak", lab, lambda lab: soak.soak(lab, seconds, rate))]
        else:
            results = [suite.run(name, lab) for name in args.scenarios or suite.SCENARIOS]
    finally:
        if lab is not None:
            lab.close()
        emulator.stop()
    report = table(results)
    sys.stdout.write(report + "\n")
    if args.out:
        args.out.write_text(report + "\n")
    log.info("logs of every process are under %s", workdir)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
