"""backend_service.publisher: rides published with their routing attributes, failures named."""

from concurrent.futures import Future

import pytest

from backend_service.config import Config
from backend_service.publisher import RidePublisher, StreamUnavailable
from ride_stream.group_commit import PublisherBusy, PublishRefused
from tests.kit.fakes import FakePublisherClient


def test_publisher_sends_ride_id_and_reply_to_as_attributes():
    client = FakePublisherClient("m-1")
    publisher = RidePublisher(client, "p", "rides", timeout_s=1)

    assert publisher.publish(b"{}", ride_id="r1", reply_to="me") == "m-1"
    topic, _, kwargs = client.calls[0]
    assert topic == "projects/p/topics/rides"
    assert kwargs["ride_id"] == "r1" and kwargs["reply_to"] == "me"


def test_publisher_failure_is_stream_unavailable_and_unhealthy():
    publisher = RidePublisher(FakePublisherClient(TimeoutError("slow")), "p", "rides", 1)

    with pytest.raises(StreamUnavailable):
        publisher.publish(b"{}", ride_id="r1", reply_to="me")
    assert not publisher.healthy


def test_the_publish_timeout_reaches_the_client():
    client = FakePublisherClient("m-1")

    RidePublisher(client, "p", "rides", timeout_s=2.5).publish(b"{}", ride_id="r1", reply_to="me")

    assert client.calls[0][2]["timeout"] == 2.5


def test_a_refused_message_is_stream_unavailable_but_the_stream_stays_healthy():
    refused = PublishRefused("attribute 'ride_id' is over Pub/Sub's size limits")
    publisher = RidePublisher(FakePublisherClient(refused), "p", "rides", 1)

    with pytest.raises(StreamUnavailable):
        publisher.publish(b"{}", ride_id="r1", reply_to="me")
    assert publisher.healthy


class ThreeTogether(FakePublisherClient):
    """Confirms nothing until three messages are out; then the second fails."""

    def publish(self, topic: str, data: bytes, **attributes):
        self.calls.append((topic, data, attributes))
        future: Future = Future()
        self.futures = [*getattr(self, "futures", []), future]
        if len(self.futures) == 3:
            for i, held in enumerate(self.futures):
                held.set_exception(PublisherBusy("full")) if i == 1 else held.set_result(f"m{i}")
        return future


def test_publish_all_sends_every_ride_before_waiting_and_counts_the_failures():
    client = ThreeTogether()
    publisher = RidePublisher(client, "p", "rides", timeout_s=0.1)

    failed = publisher.publish_all([(b"1", "r1"), (b"2", "r2"), (b"3", "r3")], reply_to="me")

    assert failed == 1
    assert [kwargs["ride_id"] for _, _, kwargs in client.calls] == ["r1", "r2", "r3"]
    assert all(kwargs["reply_to"] == "me" for _, _, kwargs in client.calls)


def test_a_busy_publisher_is_stream_unavailable():
    publisher = RidePublisher(FakePublisherClient(PublisherBusy("full")), "p", "rides", 1)

    with pytest.raises(StreamUnavailable):
        publisher.publish(b"{}", ride_id="r1", reply_to="me")


def test_publish_rpcs_in_flight_are_a_setting():
    default = Config.from_env({"PROJECT_ID": "p"})
    given = Config.from_env({"PROJECT_ID": "p", "PUBLISH_MAX_IN_FLIGHT": "16"})

    assert (default.publish_max_in_flight, given.publish_max_in_flight) == (8, 16)
