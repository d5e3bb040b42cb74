"""Each fault scenario on the real stack: every ride answered, once, with its own duration."""

import pytest

from faults import suite

pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.timeout(240)]

# The drills marked DRILL run at full length in `make faults` only: every step of each is covered
# in `make test` by a shorter test (docs/reliability.md names them). The others run in both.
DRILL = pytest.mark.drill

# Each scenario, named for what it shows, with the checks that show it.
DRILLS = [
    pytest.param(
        "predictor-killed",
        ["no ride lost", "no result crossed", "no double answer"],
        id="predictor_sigkill_mid_stream_every_ride_still_answered",
    ),
    pytest.param(
        "predictor-slow",
        ["redeliveries happened", "no double answer", "no ride lost", "no result crossed"],
        id="predictor_slow_past_the_ack_deadline_one_answer_per_ride",
        marks=DRILL,
    ),
    pytest.param(
        "emulator-restarted",
        [
            "/estimate answered 200 throughout",
            "/rides answered 503 while down",
            "503 within 8 s",
            "no other error status",
            "listener resubscribed",
            "recovered by itself",
            "no ride lost",
            "no double answer",
        ],
        id="emulator_restart_503_fast_while_down_then_recovers_by_itself",
    ),
    pytest.param(
        "backend-killed",
        [
            "survivor answered every ride it took",
            "orphaned subscription has an expiration TTL",
            "no ride lost",
            "no double answer",
        ],
        id="backend_sigkill_other_backend_unaffected_subscription_left_to_expire",
        marks=DRILL,
    ),
    pytest.param(
        "backend-terminated",
        [
            "every open request answered (200 or 202, none reset)",
            "open requests answered within RESULT_TIMEOUT_S",
            "exited within Cloud Run's 10 s",
            "its results subscription deleted",
            "survivor answered every ride it took",
            "no ride lost",
        ],
        id="backend_sigterm_answers_waiting_requests_and_deletes_its_subscription",
    ),
    pytest.param(
        "predictor-terminated",
        [
            "exited within Cloud Run's 10 s",
            "nothing redelivered: in-flight pushes finished and acked",
            "no ride lost",
            "no double answer",
        ],
        id="predictor_sigterm_finishes_in_flight_pushes_within_the_window",
    ),
    pytest.param(
        "poison-and-duplicates",
        [
            "every poison message dead-lettered by the predictor",
            "predictor stayed up",
            "good rides kept flowing (worst under 5 s)",
            "no double answer",
        ],
        id="poison_and_duplicates_dead_lettered_or_answered_once",
        marks=DRILL,
    ),
    pytest.param(
        "dead-letters-replayed",
        [
            "every ride dead-lettered by Pub/Sub",
            "the tool listed them with their reason",
            "the tool replayed them",
            "dead-letter subscription empty after",
            "no ride lost",
        ],
        id="dead_lettered_rides_replayed_with_the_tool_reach_their_riders",
        marks=DRILL,
    ),
    pytest.param(
        "soak",
        [
            "memory, threads and fds flat",
            "results subscriptions constant",
            "every estimate answered",
            "no ride lost",
            "no double answer",
        ],
        id="short_soak_keeps_resources_flat_and_answers_every_ride",
    ),
]


@pytest.mark.parametrize(("scenario", "checks"), DRILLS)
def test_drill(scenario: str, checks: list[str], lab, record):
    result = record(suite.run(scenario, lab))

    assert "ran to the end" not in result.checks, result.summary()
    for check in checks:
        assert result.checks.get(check), f"{check}: {result.summary()}"
    assert result.ok, result.summary()
