"""The dead-letter tool's rules, with a hand-written fake Pub/Sub."""

from concurrent.futures import Future
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from deadletters import DeadLetter, fetch, release, replay

SUBSCRIPTION = "projects/p/subscriptions/dead-letters"
TOPIC = "projects/p/topics/rides"


def letter(message_id: str = "7", **attributes: str) -> DeadLetter:
    return DeadLetter(f"ack-{message_id}", message_id, "2021-02-03T08:30:00", b"{}", attributes)


class FakeSubscriber:
    """Hands out its messages once per pull and records what is acked or handed back."""

    def __init__(self, letters: list[DeadLetter]) -> None:
        self.pulls = [letters] if letters else []
        self.calls: list[tuple[str, list[str]]] = []

    def pull(self, request, timeout):
        batch = self.pulls.pop(0) if self.pulls else []
        received = [
            SimpleNamespace(
                ack_id=x.ack_id,
                message=SimpleNamespace(
                    message_id=x.message_id,
                    publish_time=datetime(2021, 2, 3, tzinfo=UTC),
                    data=x.data,
                    attributes=x.attributes,
                ),
            )
            for x in batch
        ]
        return SimpleNamespace(received_messages=received)

    def acknowledge(self, request, timeout):
        self.calls.append(("ack", request["ack_ids"]))

    def modify_ack_deadline(self, request, timeout):
        self.calls.append(("release", request["ack_ids"]))


class FakePublisher:
    def __init__(self, subscriber: FakeSubscriber) -> None:
        self.subscriber = subscriber
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(self, topic, data, **attributes):
        self.published.append((topic, data, attributes))
        self.subscriber.calls.append(("publish", [attributes.get("ride_id", "")]))
        future: Future = Future()
        future.set_result(f"new-{len(self.published)}")
        return future


def test_predictor_dead_letter_reports_the_predictors_reason():
    assert letter(reason="invalid-ride", error="bad zone").reason == "invalid-ride"


def test_policy_dead_letter_reports_that_pubsub_gave_up():
    dead = letter(CloudPubSubDeadLetterSourceDeliveryCount="5")

    assert dead.reason == "delivery-attempts-exhausted (5)"


def test_replay_restores_the_original_attributes_and_acks_only_after_the_publish():
    subscriber = FakeSubscriber([])
    publisher = FakePublisher(subscriber)
    dead = letter(
        ride_id="r-1",
        reply_to="b-1",
        reason="invalid-ride",
        error="x",
        source_message_id="3",
        CloudPubSubDeadLetterSourceDeliveryCount="5",
    )

    ids = replay(publisher, subscriber, SUBSCRIPTION, TOPIC, [dead])

    assert ids == {"7": "new-1"}
    assert publisher.published == [(TOPIC, b"{}", {"ride_id": "r-1", "reply_to": "b-1"})]
    assert subscriber.calls == [("publish", ["r-1"]), ("ack", ["ack-7"])]


def test_truncated_dead_letter_is_not_replayed():
    subscriber = FakeSubscriber([])
    dead = letter(truncated_from_bytes="9500000")

    with pytest.raises(ValueError, match="truncated"):
        replay(FakePublisher(subscriber), subscriber, SUBSCRIPTION, TOPIC, [dead])

    assert subscriber.calls == []


def test_listing_hands_every_dead_letter_back_untouched():
    subscriber = FakeSubscriber([letter("1"), letter("2")])

    letters = fetch(subscriber, SUBSCRIPTION)
    release(subscriber, SUBSCRIPTION, letters)

    assert [x.message_id for x in letters] == ["1", "2"]
    assert subscriber.calls == [("release", ["ack-1", "ack-2"])]
