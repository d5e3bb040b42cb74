"""Pub/Sub as GCP runs it (slow, failing, closing streams, denying): short runs of each drill."""

import pytest

from faults import pubsub_faults, suite

pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.timeout(120)]
CORRECT = ["no ride lost", "no result crossed", "no double answer"]


def assert_checks(result, checks: list[str]) -> None:
    assert "ran to the end" not in result.checks, result.summary()
    for check in checks:
        assert result.checks.get(check), f"{check}: {result.summary()}"


def test_publish_failing_every_ride_answered_without_a_503(lab, record):
    result = record(
        suite.run("publish-failing", lab, lambda lab: pubsub_faults.publish_failing(lab, seconds=5))
    )

    assert_checks(result, [*CORRECT, "no /rides answered 503 (transient Publish failures retried)"])


def test_streams_closed_every_confirmation_answered_at_once(lab, record):
    result = record(
        suite.run(
            "streams-closed",
            lab,
            lambda lab: pubsub_faults.streams_closed(lab, seconds=8, every_s=2),
        )
    )

    assert_checks(
        result,
        [
            *CORRECT,
            "streams were closed",
            "every confirmation answered 200 (closed streams reopened at once)",
        ],
    )


def test_latency_on_every_call_every_ride_answered_once(lab, record):
    result = record(
        suite.run(
            "latency-400",
            lab,
            lambda lab: pubsub_faults.latency_400(lab, seconds=4, rate_per_s=100),
        )
    )

    assert_checks(result, CORRECT)
    assert result.figures["answered_per_s"] > 0


def test_results_permission_denied_unready_says_why_then_recovers(lab, record):
    result = record(
        suite.run(
            "results-permission-denied",
            lab,
            lambda lab: pubsub_faults.results_permission_denied(lab, denied_s=3),
        )
    )

    assert_checks(
        result,
        [
            *CORRECT,
            "turned unready while denied",
            "said why in its log at ERROR",
            "/estimate answered 200 throughout",
            "ready again once restored",
        ],
    )


def test_results_not_found_subscription_replaced_rides_in_flight_answered(lab, record):
    result = record(
        suite.run(
            "results-not-found",
            lab,
            lambda lab: pubsub_faults.results_not_found(
                lab, seconds=6, rate_per_s=10, answer_within_s=10
            ),
        )
    )

    assert_checks(result, [*CORRECT, "replaced its subscription"])
