"""Each fault scenario on the real stack: every ride answered, once, with its own duration."""

import pytest

from faults import suite

pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.timeout(240)]


def check(name: str, lab, record) -> None:
    result = record(suite.run(name, lab))
    assert result.ok, result.summary()


def test_predictor_sigkill_mid_stream_every_ride_still_answered(lab, record):
    check("predictor-killed", lab, record)


def test_predictor_slow_past_the_ack_deadline_one_answer_per_ride(lab, record):
    check("predictor-slow", lab, record)


def test_emulator_restart_503_fast_while_down_then_recovers_by_itself(lab, record):
    check("emulator-restarted", lab, record)


def test_backend_sigkill_other_backend_unaffected_subscription_left_to_expire(lab, record):
    check("backend-killed", lab, record)


def test_backend_sigterm_answers_waiting_requests_and_deletes_its_subscription(lab, record):
    check("backend-terminated", lab, record)


def test_predictor_sigterm_finishes_in_flight_pushes_within_the_window(lab, record):
    check("predictor-terminated", lab, record)


def test_poison_and_duplicates_dead_lettered_or_answered_once(lab, record):
    check("poison-and-duplicates", lab, record)


def test_dead_lettered_rides_replayed_with_the_tool_reach_their_riders(lab, record):
    check("dead-letters-replayed", lab, record)


def test_short_soak_keeps_resources_flat_and_answers_every_ride(lab, record):
    check("soak", lab, record)
