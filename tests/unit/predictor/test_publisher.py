"""predictor_service.publisher: results and dead letters to their topics."""

import pytest

from predictor_service.config import Config
from predictor_service.errors import TransientError
from predictor_service.publisher import MAX_DEAD_LETTER_BYTES, ResultPublisher
from tests.kit.fakes import FakePublisherClient


def test_publisher_targets_the_results_and_dead_letter_topics():
    client = FakePublisherClient()
    publisher = ResultPublisher(client, "p", "results", "dead", timeout_s=1)

    publisher.publish_result(b"r", {"ride_id": "1"})
    publisher.dead_letter(b"d", {"reason": "x"})

    assert [c[0] for c in client.calls] == ["projects/p/topics/results", "projects/p/topics/dead"]


def test_publisher_failure_is_transient():
    publisher = ResultPublisher(
        FakePublisherClient(RuntimeError("unavailable")), "p", "results", "dead", timeout_s=1
    )

    with pytest.raises(TransientError):
        publisher.publish_result(b"r", {})


def test_dead_letter_of_a_huge_payload_is_truncated_and_says_so():
    client = FakePublisherClient()
    publisher = ResultPublisher(client, "p", "results", "dead", timeout_s=1)

    publisher.dead_letter(b"x" * (MAX_DEAD_LETTER_BYTES + 10), {"error": "e" * 5000})

    _, data, attrs = client.calls[0]
    assert len(data) == MAX_DEAD_LETTER_BYTES
    assert attrs["truncated_from_bytes"] == str(MAX_DEAD_LETTER_BYTES + 10)
    assert len(attrs["error"]) <= 1024


def test_dead_letter_attributes_are_cut_by_utf8_bytes_not_characters():
    client = FakePublisherClient()
    publisher = ResultPublisher(client, "p", "results", "dead", timeout_s=1)

    publisher.dead_letter(b"d", {"error": "é" * 1000, "reason": "bad"})

    _, _, attrs = client.calls[0]
    assert attrs["error"] == "é" * 512  # 1,024 bytes, no character split
    assert attrs["reason"] == "bad"


def test_the_publish_timeout_reaches_the_client():
    client = FakePublisherClient()
    publisher = ResultPublisher(client, "p", "results", "dead", timeout_s=2.5)

    publisher.publish_result(b"r", {"ride_id": "1"})

    assert client.calls[0][2]["timeout"] == 2.5


def test_publish_rpcs_in_flight_are_a_setting():
    environ = {"PROJECT_ID": "p", "MODEL_URI": "/m", "PUBLISH_MAX_IN_FLIGHT": "16"}

    assert Config.from_env(environ).publish_max_in_flight == 16
