"""The backend's result listener on the real emulator: its own results, acked, through a loss."""

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from backend_service.stream import STREAM_ACK_DEADLINE_S, ResultListener, make_clients
from devstack.pubsub import emulator_clients

pytestmark = pytest.mark.emulator


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


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
        _, subscriber = make_clients(max_latency_s=0)
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

    assert wait_until(lambda: len(received) >= 40)
    # Unacked, they would come again once the stream's ack deadline passed; anything else,
    # another process's result or a second copy, would show by then too.
    time.sleep(STREAM_ACK_DEADLINE_S + 2)
    assert sorted(r[0] for r in received) == sorted(mine)
    assert listener.running


def test_a_lost_subscription_is_replaced_and_results_flow_again(emulator, topic, listen):
    listener, received = listen()
    assert wait_until(lambda: listener.running)
    first = listener.subscription
    with emulator_clients(emulator.address) as (_, subscriber):
        subscriber.delete_subscription(request={"subscription": first})

    assert wait_until(lambda: listener.subscription != first and listener.running)
    publish_results(emulator, topic, listener.reply_to, ["after-the-loss"])

    assert wait_until(lambda: [r[0] for r in received] == ["after-the-loss"])


def test_close_stops_pulling_and_deletes_the_subscription(emulator, topic, listen):
    listener, _ = listen()
    assert wait_until(lambda: listener.running)

    started = time.monotonic()
    listener.close()

    assert time.monotonic() - started < 3.0
    assert not listener.running
    with emulator_clients(emulator.address) as (publisher, _):
        left = list(
            publisher.list_topic_subscriptions(topic=publisher.topic_path(emulator.project, topic))
        )
    assert left == []
