"""The backend's result listener on the real emulator: its own results, acked, through a loss."""

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from backend_service.listener import (
    REOPEN_WAIT_S,
    STREAM_ACK_DEADLINE_S,
    ResultListener,
    make_client,
    stream_channels,
)
from devstack.processes import wait_until
from devstack.proxy import TcpProxy
from devstack.pubsub import emulator_clients

pytestmark = pytest.mark.emulator
WAIT_S = 20.0


@pytest.fixture
def topic(emulator) -> Iterator[str]:
    name = f"results-{uuid.uuid4().hex[:8]}"
    with emulator_clients(emulator.address) as (publisher, _):
        publisher.create_topic(name=publisher.topic_path(emulator.project, name))
        yield name


@pytest.fixture
def listen(emulator, topic, monkeypatch) -> Iterator[Callable[[], tuple[ResultListener, list]]]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.address)
    started: list[ResultListener] = []

    def start() -> tuple[ResultListener, list]:
        received: list = []
        subscriber = make_client()
        listener = ResultListener(
            subscriber, emulator.project, topic, on_result=lambda *r: received.append(r),
            ttl_s=86400,
        )  # fmt: skip
        listener.start()
        started.append(listener)
        return listener, received

    yield start
    for listener in started:
        listener.close()


def publish_results(emulator, topic: str, reply_to: str, ride_ids: list[str]) -> None:
    with emulator_clients(emulator.address) as (publisher, _):
        path = publisher.topic_path(emulator.project, topic)
        futures = [
            publisher.publish(
                path,
                json.dumps(
                    {"ride_id": ride_id, "duration_final": 7.5, "model_version": "v"}
                ).encode(),
                ride_id=ride_id,
                reply_to=reply_to,
            )
            for ride_id in ride_ids
        ]
        for future in futures:
            future.result(timeout=10)


def test_results_for_this_process_come_once_are_acked_and_no_other_comes(emulator, topic, listen):
    listener, received = listen()
    mine = [f"mine-{i}" for i in range(40)]

    publish_results(emulator, topic, listener.reply_to, mine)
    publish_results(emulator, topic, "another-backend", ["theirs-1", "theirs-2"])

    wait_until(lambda: len(received) >= 40, WAIT_S, what="40 results")
    # Unacked, they would come again once the stream's ack deadline passed; anything else,
    # another process's result or a second copy, would show by then too.
    time.sleep(STREAM_ACK_DEADLINE_S + 2)
    assert sorted(r[0] for r in received) == sorted(mine)
    assert listener.running
    # If this process dies without deleting it, Pub/Sub deletes its subscription after a day idle.
    with emulator_clients(emulator.address) as (_, subscriber):
        mine_sub = subscriber.get_subscription(subscription=listener.subscription)
    assert mine_sub.expiration_policy.ttl.total_seconds() == 86400


def test_a_lost_subscription_is_replaced_and_results_flow_again(emulator, topic, listen):
    listener, received = listen()
    wait_until(lambda: listener.running, WAIT_S, what="the listener")
    first = listener.subscription
    with emulator_clients(emulator.address) as (_, subscriber):
        subscriber.delete_subscription(request={"subscription": first})

    wait_until(
        lambda: listener.subscription != first and listener.running,
        WAIT_S,
        what="a new subscription",
    )
    publish_results(emulator, topic, listener.reply_to, ["after-the-loss"])

    wait_until(lambda: [r[0] for r in received] == ["after-the-loss"], WAIT_S, what="the result")


def test_close_stops_pulling_and_deletes_the_subscription(emulator, topic, listen):
    listener, _ = listen()
    wait_until(lambda: listener.running, WAIT_S, what="the listener")

    started = time.monotonic()
    listener.close()

    assert time.monotonic() - started < 3.0
    assert not listener.running
    with emulator_clients(emulator.address) as (publisher, _):
        left = list(
            publisher.list_topic_subscriptions(topic=publisher.topic_path(emulator.project, topic))
        )
    assert left == []


class JumpClock:
    """A monotonic clock that a test moves forward, as a freeze of the process does."""

    def __init__(self) -> None:
        self.frozen_s = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.frozen_s


@pytest.fixture
def listen_through(emulator, topic, monkeypatch) -> Iterator[Callable[..., tuple]]:
    """Start listeners whose stream goes to `address` on channels of its own, on a JumpClock."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.address)
    started: list[ResultListener] = []

    def start(address: str) -> tuple[ResultListener, list, JumpClock]:
        received: list = []
        clock = JumpClock()
        subscriber = make_client()
        listener = ResultListener(
            subscriber, emulator.project, topic, on_result=lambda *r: received.append(r),
            ttl_s=86400, channels=stream_channels(address), clock=clock,
        )  # fmt: skip
        listener.start()
        started.append(listener)
        wait_until(lambda: listener.running, WAIT_S, what="the listener")
        return listener, received, clock

    yield start
    for listener in started:
        listener.close()


def test_a_freeze_makes_the_listener_unready_until_its_stream_is_reopened(emulator, listen_through):
    listener, _, clock = listen_through(emulator.address)

    clock.frozen_s = 60.0

    assert not listener.running
    assert listener.ensure_open()
    assert listener.running


def test_a_healthy_stream_reopened_after_a_freeze_loses_no_result(emulator, topic, listen_through):
    listener, received, clock = listen_through(emulator.address)
    clock.frozen_s = 60.0
    mine = [f"after-freeze-{i}" for i in range(20)]

    listener.ensure_open()
    publish_results(emulator, topic, listener.reply_to, mine)

    # Well before the ack deadline: none went to the stream that was ended.
    wait_until(lambda: len(received) >= 20, STREAM_ACK_DEADLINE_S / 2, what="20 results")
    assert sorted(r[0] for r in received) == sorted(mine)


def test_a_stream_lost_during_a_freeze_is_reopened_before_it_is_relied_on(
    emulator, topic, listen_through
):
    with TcpProxy(emulator.address, follow_streams=True) as proxy:
        listener, received, clock = listen_through(proxy.address)
        assert proxy.cut() == (1, 1)  # black-holed, as a connection lost while frozen
        clock.frozen_s = 60.0

        started = time.monotonic()
        opened = listener.ensure_open()
        reopen_s = time.monotonic() - started
        publish_results(emulator, topic, listener.reply_to, ["after-the-cut"])

        assert opened and reopen_s < REOPEN_WAIT_S
        wait_until(lambda: len(received) == 1, STREAM_ACK_DEADLINE_S / 2, what="the result")
        assert received[0][0] == "after-the-cut"
