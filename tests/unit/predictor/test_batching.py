"""Group-commit publishing with a hand-written fake gRPC channel."""

import threading
from types import SimpleNamespace

import pytest

from predictor_service import batching
from predictor_service.batching import GroupCommitPublisher

TOPIC = "projects/p/topics/results"


class FakeChannel:
    """Records each Publish request; can hold the first call, or fail."""

    def __init__(self) -> None:
        self.requests: list = []
        self.metadata: list = []
        self.fail = False
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def unary_unary(self, method, request_serializer, response_deserializer):
        assert method == "/google.pubsub.v1.Publisher/Publish"

        def call(request, timeout, metadata):
            self.entered.set()
            self.hold.wait(5)
            self.requests.append(request)
            self.metadata.append(metadata)
            if self.fail:
                raise ConnectionError("emulated outage")
            count = len(self.requests)
            return batching._Response(
                message_ids=[f"{count}-{i}" for i in range(len(request.messages))]
            )

        return call


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def publisher(channel: FakeChannel) -> GroupCommitPublisher:
    client = SimpleNamespace(transport=SimpleNamespace(grpc_channel=channel))
    return GroupCommitPublisher(client, timeout_s=5)


def test_publish_resolves_to_the_message_id(publisher, channel):
    message_id = publisher.publish(TOPIC, b"data", ride_id="r1").result(5)

    assert message_id == "1-0"
    sent = channel.requests[0]
    assert sent.topic == TOPIC
    assert sent.messages[0].data == b"data"
    assert dict(sent.messages[0].attributes) == {"ride_id": "r1"}
    assert channel.metadata[0] == [("x-goog-request-params", f"topic={TOPIC}")]


def test_messages_queued_during_an_rpc_leave_together_in_the_next(publisher, channel):
    channel.hold.clear()
    first = publisher.publish(TOPIC, b"first")
    channel.entered.wait(5)
    waiting = [publisher.publish(TOPIC, f"m{i}".encode()) for i in range(3)]
    channel.hold.set()

    assert first.result(5) == "1-0"
    assert [f.result(5) for f in waiting] == ["2-0", "2-1", "2-2"]
    assert len(channel.requests) == 2


def test_a_failed_rpc_fails_its_messages_and_the_sender_goes_on(publisher, channel):
    channel.fail = True
    with pytest.raises(ConnectionError):
        publisher.publish(TOPIC, b"lost").result(5)

    channel.fail = False
    assert publisher.publish(TOPIC, b"next").result(5) == "2-0"


def test_a_message_that_would_overflow_the_rpc_waits_for_the_next(publisher, channel, monkeypatch):
    monkeypatch.setattr(batching, "MAX_BYTES", 10)
    channel.hold.clear()
    first = publisher.publish(TOPIC, b"x")
    channel.entered.wait(5)
    small, big = publisher.publish(TOPIC, b"12345"), publisher.publish(TOPIC, b"123456789")
    channel.hold.set()

    assert [f.result(5) for f in (first, small, big)] == ["1-0", "2-0", "3-0"]


def test_messages_to_two_topics_go_in_one_rpc_each(publisher, channel):
    channel.hold.clear()
    publisher.publish(TOPIC, b"first")
    channel.entered.wait(5)
    a = publisher.publish(TOPIC, b"a")
    b = publisher.publish("projects/p/topics/dead-letters", b"b")
    channel.hold.set()

    a.result(5), b.result(5)
    assert sorted(r.topic for r in channel.requests[1:]) == [
        "projects/p/topics/dead-letters",
        TOPIC,
    ]
