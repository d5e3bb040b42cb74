"""`python -m devstack`: start the whole system on loopback and stop it on Ctrl-C or SIGTERM."""

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

from .stack import Settings, Stack

log = logging.getLogger("devstack")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="[devstack] %(message)s", stream=sys.stdout)
    settings = Settings.from_env(dict(os.environ))
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: stopping everything", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(settings, progress=log.info)
    try:
        stack.start()
    except Exception as err:
        log.error("could not start the stack: %s", err)
        return 1
    backend = stack.backends[0].url
    log.info("ready. open the rider's page: %s/", backend)
    log.info("backend API: %s  (logs in %s)", backend, settings.workdir)
    log.info(
        "or try:\n  curl -s -X POST %s/estimate -H 'Content-Type: application/json' "
        '-d \'{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 2.5}\'\n'
        "  curl -s -X POST %s/rides -H 'Content-Type: application/json' "
        '-d \'{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 2.5, '
        '"datetime": "2021-02-03T08:30:00"}\'\n'
        "  make trace   (that ride's timeline, hop by hop)\nCtrl-C stops everything.",
        backend,
        backend,
    )
    try:
        while not stop.wait(1.0):
            dead = [p for p in [stack.predictor, *stack.backends] if not p.process.alive()]
            if dead:
                log.error("%s exited:\n%s", dead[0].package, dead[0].process.log_tail())
                return 1
    finally:
        started = time.monotonic()
        stack.stop()
        log.info("stopped in %.1f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
