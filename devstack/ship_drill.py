"""`python -m devstack.ship_drill`: the local rehearsal of shipping a model, on its own emulator.

Production serves the registered default model (models:/ride-duration@production, trained first
if missing); a candidate (default: the course's baseline, registered first if missing) starts
beside it and shadows its rides. Rides of the validation month are replayed and the compare report
printed; then the switch drill promotes the candidate and rolls it back under a steady stream of
rides, and prints what the riders got. Everything runs on loopback and stops at the end.
"""

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from .compare import Topics, compare
from .comparison import report
from .emulator import Emulator, unavailable_reason
from .processes import free_port
from .shadow import COURSE_MODEL, Shadow, ensure_course_model, start_candidate
from .stack import ROOT, Settings, start_isolated
from .switch import drill

log = logging.getLogger("ship-drill")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.ship_drill", description=__doc__)
    parser.add_argument("--candidate", default=COURSE_MODEL, help="the candidate's MODEL_URI")
    parser.add_argument("--replay", type=int, default=200, help="validation rides to compare on")
    parser.add_argument("--switch-rides", type=int, default=150, help="rides of the switch drill")
    parser.add_argument("--rate", type=float, default=15.0, help="rides a second, both parts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[ship-drill] %(message)s", stream=sys.stderr)
    if reason := unavailable_reason():
        log.error("cannot run the drill: %s", reason)
        return 2
    (ROOT / ".local").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ship-drill-", dir=ROOT / ".local"))
    ensure_course_model(Settings(), args.candidate, log.info)  # `make run`'s registry
    emulator = Emulator(free_port(), "ship-drill", workdir)
    log.info("starting a Pub/Sub emulator of the drill's own on %s", emulator.address)
    emulator.start()
    try:
        log.info("starting production (the stack's predictor; trains the default model if none)")
        stack = start_isolated(emulator, workdir, backends=0)
        try:
            shadow = Shadow()
            log.info("starting the candidate %s, shadowing production's rides", args.candidate)
            candidate = start_candidate(stack, args.candidate, shadow)
            try:
                s = stack.settings
                topics = Topics(
                    s.project, s.rides_topic, s.results_topic, s.dead_letter_topic,
                    shadow.results_topic,
                )  # fmt: skip
                log.info("comparing on %d rides of the validation month", args.replay)
                values = compare(
                    topics, stack.address, replay=args.replay, rate=args.rate, seconds=180
                )
                log.info("switch drill: promote after a third of the rides, roll back after two")
                counts = drill(stack, candidate.url, rides=args.switch_rides, rate=args.rate)
            finally:
                candidate.stop()
        finally:
            stack.stop()
    finally:
        emulator.stop()
    sys.stdout.write(f"compare report\n{report(values)}\n\nswitch drill\n")
    sys.stdout.write(report({k: str(v) for k, v in counts.items()}) + "\n")
    log.info("logs of every process are under %s", workdir)
    wrong = ("lost", "answered twice", "candidate answers before promotion")
    return 1 if any(counts[name] for name in wrong) else 0


if __name__ == "__main__":
    sys.exit(main())
