"""The dead-letter tool's rules, with a hand-written fake Pub/Sub and on the emulator."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

import deadletters
from deadletters import DeadLetter, Leases, fetch, release, replay, subscriber_client
from devstack.pubsub import emulator_clients
from tests.kit.pubsub import Names, topic_and_subscription

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


def test_listing_hands_every_dead_letter_back_untouched(monkeypatch):
    monkeypatch.setattr(deadletters, "EMPTY_PULL_GAP_S", 0.0)
    subscriber = FakeSubscriber([letter("1"), letter("2")])

    letters = fetch(subscriber, SUBSCRIPTION)
    release(subscriber, SUBSCRIPTION, letters)

    assert [x.message_id for x in letters] == ["1", "2"]
    assert subscriber.calls == [("release", ["ack-1", "ack-2"])]


def test_a_letter_delivered_twice_is_listed_once_with_its_latest_ack_id(monkeypatch):
    monkeypatch.setattr(deadletters, "EMPTY_PULL_GAP_S", 0.0)
    again = DeadLetter("ack-7-again", "7", "2021-02-03T08:30:00", b"{}", {})
    subscriber = FakeSubscriber([letter("7")])
    subscriber.pulls.append([again])

    letters = fetch(subscriber, SUBSCRIPTION)

    assert [(x.message_id, x.ack_id) for x in letters] == [("7", "ack-7-again")]


def test_one_empty_pull_does_not_end_the_listing(monkeypatch):
    monkeypatch.setattr(deadletters, "EMPTY_PULL_GAP_S", 0.0)
    subscriber = FakeSubscriber([letter("1")])
    subscriber.pulls += [[], [letter("2")], [], [letter("3")]]

    letters = fetch(subscriber, SUBSCRIPTION)

    assert [x.message_id for x in letters] == ["1", "2", "3"]


def test_a_letter_replayed_already_in_this_run_is_acked_not_published_again():
    subscriber = FakeSubscriber([])
    publisher = FakePublisher(subscriber)
    replayed = {"7": "new-earlier"}

    replay(publisher, subscriber, SUBSCRIPTION, TOPIC, [letter("7")], replayed)

    assert publisher.published == []
    assert subscriber.calls == [("ack", ["ack-7"])]


@pytest.fixture
def dead_letter_topic(emulator) -> Iterator[Names]:
    with topic_and_subscription(emulator.address, emulator.project) as names:
        yield names


@pytest.fixture
def rides_topic(emulator) -> Iterator[Names]:
    with topic_and_subscription(emulator.address, emulator.project) as names:
        yield names


def publish_letters(address: str, topic: str, count: int) -> None:
    with emulator_clients(address) as (publisher, _):
        futures = [
            publisher.publish(topic, f'{{"n": {i}}}'.encode(), ride_id=f"r-{i}", reason="x")
            for i in range(count)
        ]
        for future in futures:
            future.result(timeout=30)


@pytest.mark.emulator
def test_listing_reads_every_letter_and_leaves_them_all_there(emulator, dead_letter_topic):
    publish_letters(emulator.address, dead_letter_topic.topic, 250)
    subscriber = subscriber_client(emulator.address)
    try:
        first = fetch(subscriber, dead_letter_topic.subscription)
        release(subscriber, dead_letter_topic.subscription, first)
        second = fetch(subscriber, dead_letter_topic.subscription)
        release(subscriber, dead_letter_topic.subscription, second)
    finally:
        subscriber.close()

    assert len(first) == len(second) == 250
    assert {x.message_id for x in first} == {x.message_id for x in second}


class SlowPublisher:
    """The real publisher, each publish started `delay_s` late: a long replay."""

    def __init__(self, publisher, delay_s: float) -> None:
        self.publisher, self.delay_s = publisher, delay_s

    def publish(self, topic, data, **attributes):
        time.sleep(self.delay_s)
        return self.publisher.publish(topic, data, **attributes)


@pytest.mark.emulator
@pytest.mark.timeout(60)
def test_letters_stay_leased_through_a_long_replay_and_are_replayed_once(
    emulator, dead_letter_topic, rides_topic
):
    publish_letters(emulator.address, dead_letter_topic.topic, 3)
    subscription = dead_letter_topic.subscription
    rivals: list[str] = []
    subscriber = subscriber_client(emulator.address)
    try:
        with emulator_clients(emulator.address) as (publisher, rival):
            with Leases(subscriber, subscription, lease_s=2, every_s=0.5) as leases:
                letters = fetch(subscriber, subscription, leases=leases)
                stop = threading.Event()

                def compete() -> None:
                    # Another reader of the subscription: it must get nothing while leased.
                    while not stop.wait(0.3):
                        pulled = rival.pull(
                            request={"subscription": subscription, "max_messages": 10}, timeout=2
                        )
                        rivals.extend(m.message.message_id for m in pulled.received_messages)

                competitor = threading.Thread(target=compete)
                competitor.start()
                try:
                    replayed = replay(
                        SlowPublisher(publisher, delay_s=1.5),
                        subscriber,
                        subscription,
                        rides_topic.topic,
                        letters,
                        leases=leases,
                    )
                finally:
                    stop.set()
                    competitor.join(timeout=10)
            extended = leases.extended
        left = fetch(subscriber, subscription, budget_s=5)
        published = fetch(subscriber, rides_topic.subscription, budget_s=5)
    finally:
        subscriber.close()

    assert len(letters) == 3 and len(replayed) == 3
    assert rivals == [], "a leased letter was handed to another reader"
    assert extended >= 3
    assert left == []
    assert sorted(x.attributes["ride_id"] for x in published) == ["r-0", "r-1", "r-2"]
