"""`python -m bench [--quick]`: start the stacks, run every measurement, write the report."""

import argparse
import logging
import sys
import time
from pathlib import Path

from devstack.emulator import unavailable_reason
from devstack.measure import load, machine
from devstack.stack import ROOT

from . import setup
from .figures import Figure, skipped
from .report import tracing_table, write
from .scenarios import PLANS, Bench

log = logging.getLogger("bench")
BUSY_LOAD = 1.5  # a 1-minute load average above this on 2 cores means someone else is busy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced set, under two minutes")
    parser.add_argument(
        "--tracing", nargs="+", default=[], choices=["off", "on"],
        help="also measure predictor CPU per push and backend CPU per ride with tracing off "
        "and/or on, in this order (off on off on: two rounds, interleaved)",
    )  # fmt: skip
    parser.add_argument(
        "--trace-ratio", type=float, default=0.1, help="sampling when on (the deploy's)"
    )
    parser.add_argument("--retrain", action="store_true", help="train the bench model again")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="results folder root"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s", stream=sys.stdout)
    reason = unavailable_reason()
    if reason:
        log.error("cannot run the bench: the Pub/Sub emulator is unavailable: %s", reason)
        return 1
    plan = PLANS["quick" if args.quick else "full"]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    folder = args.out / time.strftime("%Y%m%d-%H%M%S")
    host = machine()
    if host["loadavg"][0] > BUSY_LOAD:  # type: ignore[index]
        log.warning("load average %s: others are busy, figures will be noisy", host["loadavg"])
    t0 = time.monotonic()
    workdir = setup.WORKDIR / "runs" / folder.name
    bench = Bench(
        plan, workdir, progress=log.info, retrain=args.retrain,
        tracing=args.tracing, trace_ratio=args.trace_ratio,
    )  # fmt: skip
    figures: list[Figure] = []
    try:
        figures = bench.run_all()
    except Exception as err:  # report what was measured before the failure
        log.exception("the bench stopped early")
        figures = bench.figures + [skipped("aborted", "Bench run", f"{type(err).__name__}: {err}")]
    finally:
        bench.close()
    run = {
        "started": started,
        "mode": plan.name,
        "machine": host,
        "load_before": host["loadavg"],
        "load_after": load(),
        "elapsed_s": time.monotonic() - t0,
    }
    write(folder, run, figures)
    log.info("wrote %s/{results.json,report.md,latency.png}", folder)
    for f in figures:
        log.info(
            "%-55s %-70s %s", f.title, f.result, {True: "met", False: "MISSED", None: ""}[f.met]
        )
        if "tracing" in f.data:
            log.info("\n%s", tracing_table(f.data["tracing"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
