"""The scenarios, in the order the suite runs them, and a runner that never lets one escape."""

import logging
import time
import traceback
from collections.abc import Callable

from devstack.lab import Lab

from . import (
    freeze_faults,
    orphan_faults,
    process_faults,
    pubsub_faults,
    soak,
    store_faults,
    stream_faults,
)
from .report import ScenarioResult

log = logging.getLogger("faults")

Scenario = Callable[[Lab], ScenarioResult]
SCENARIOS: dict[str, Scenario] = {
    "predictor-killed": process_faults.predictor_killed,
    "predictor-slow": stream_faults.predictor_slow,
    "emulator-restarted": stream_faults.emulator_restarted,
    "backend-killed": process_faults.backend_killed,
    "backend-terminated": process_faults.backend_terminated,
    "predictor-terminated": process_faults.predictor_terminated,
    "backend-frozen": freeze_faults.backend_frozen,
    "poison-and-duplicates": stream_faults.poison_and_duplicates,
    "dead-letters-replayed": stream_faults.dead_letters_replayed,
    "publish-failing": pubsub_faults.publish_failing,
    "streams-closed": pubsub_faults.streams_closed,
    "latency-400": pubsub_faults.latency_400,
    "results-permission-denied": pubsub_faults.results_permission_denied,
    "results-not-found": pubsub_faults.results_not_found,
    "backend-killed-shared": store_faults.backend_killed_shared,
    "store-restarted": store_faults.store_restarted,
    "orphans-lookups": orphan_faults.backend_killed_lookups,
    "orphans-lookups-direct": lambda lab: orphan_faults.backend_killed_lookups(
        lab, through_proxy=False
    ),
    "soak": soak.short_soak,
}


def run(name: str, lab: Lab, scenario: Scenario | None = None) -> ScenarioResult:
    """Run one scenario; an exception becomes a failed result that says what went wrong."""
    started = time.monotonic()
    log.info("scenario %s: starting", name)
    try:
        result = (scenario or SCENARIOS[name])(lab)
    except Exception as err:
        result = ScenarioResult(name)
        result.checks["ran to the end"] = False
        result.notes.append(f"{type(err).__name__}: {err}")
        log.error("scenario %s raised:\n%s", name, traceback.format_exc())
    result.seconds = time.monotonic() - started
    log.info("scenario %s: %s (%.0f s)", name, result.summary(), result.seconds)
    return result
