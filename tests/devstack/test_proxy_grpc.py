"""The fault proxy on the emulator: each knob does what it says, and no message is lost."""

import re
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from devstack.grpc_proxy import FaultProxy
from tests.kit.pubsub import Names, publish, streaming_pull, topic_and_subscription

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(90)]
Code = grpc.StatusCode


@pytest.fixture
def proxy(emulator) -> Iterator[FaultProxy]:
    with FaultProxy(emulator.address) as started:
        yield started


@pytest.fixture
def names(emulator) -> Iterator[Names]:
    with topic_and_subscription(emulator.address, emulator.project) as created:
        yield created


@pytest.fixture
def channel(proxy: FaultProxy) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(proxy.address) as opened:
        yield opened


@pytest.fixture
def direct(emulator) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(emulator.address) as opened:
        yield opened


def publish_seconds(channel: grpc.Channel, topic: str, times: int = 5) -> float:
    """The shortest time of a Publish call: the least disturbed by the machine's other work."""
    took = []
    for i in range(times):
        started = time.monotonic()
        publish(channel, topic, f"m{i}".encode())
        took.append(time.monotonic() - started)
    return min(took)


def failures(channel: grpc.Channel, topic: str, calls: int) -> list[Code]:
    """Publish `calls` times; return the status code of each call that failed."""
    codes = []
    for i in range(calls):
        try:
            publish(channel, topic, f"m{i}".encode())
        except grpc.RpcError as err:
            codes.append(err.code())
    return codes


def drain(channel: grpc.Channel, subscription: str, want: int, budget_s: float) -> set[str]:
    """Read one stream, acking, until `want` distinct messages came or `budget_s` passed."""
    seen: set[str] = set()
    stream = streaming_pull(channel, subscription)
    timer = threading.Timer(budget_s, stream.call.cancel)
    timer.start()
    try:
        for response in stream:
            stream.ack([m.ack_id for m in response.received_messages])
            seen |= {m.message.message_id for m in response.received_messages}
            if len(seen) >= want:
                break
    except grpc.RpcError:
        pass
    finally:
        timer.cancel()
        stream.close()
        stream.call.cancel()
    return seen


def test_publish_latency_is_added_within_tolerance(proxy, channel, names):
    before = publish_seconds(channel, names.topic)

    proxy.set_latency(Publish=0.2)
    after = publish_seconds(channel, names.topic)

    assert 0.18 <= after - before <= 0.3, (before, after)
    assert proxy.counts()["Publish"]["calls"] == 10


def test_default_latency_applies_to_methods_without_their_own(proxy, channel, names):
    proxy.set_latency(default_s=0.15, Publish=0.0)

    publish_s = publish_seconds(channel, names.topic, times=3)
    started = time.monotonic()
    first = next(iter(streaming_pull(channel, names.subscription)))
    first_response_s = time.monotonic() - started

    assert publish_s < 0.1
    assert first.received_messages and first_response_s >= 0.15


def test_a_share_of_publishes_fails_with_unavailable(proxy, channel, names):
    proxy.fail_publishes(0.5, Code.UNAVAILABLE)

    codes = failures(channel, names.topic, 60)

    assert 15 <= len(codes) <= 45 and set(codes) == {Code.UNAVAILABLE}
    assert proxy.counts()["Publish"]["UNAVAILABLE before"] == len(codes)


def test_publish_failing_after_forwarding_was_published_all_the_same(proxy, channel, direct, names):
    proxy.fail_publishes(1.0, Code.DEADLINE_EXCEEDED, when="after")

    codes = failures(channel, names.topic, 5)
    received = drain(direct, names.subscription, want=5, budget_s=10)

    assert codes == [Code.DEADLINE_EXCEEDED] * 5
    assert len(received) == 5


def test_publish_failing_before_forwarding_publishes_nothing(proxy, channel, direct, names):
    proxy.fail_publishes(1.0, Code.UNAVAILABLE, when="before")
    failures(channel, names.topic, 3)
    proxy.clear()
    publish(channel, names.topic, b"only this one")

    received = drain(direct, names.subscription, want=2, budget_s=3)

    assert len(received) == 1


def test_streams_are_closed_after_n_seconds_with_unavailable(proxy, channel, names):
    proxy.close_streams_after(1.0)
    stream = streaming_pull(channel, names.subscription)
    started = time.monotonic()

    with pytest.raises(grpc.RpcError) as raised:
        for _ in stream:
            pass

    assert raised.value.code() == Code.UNAVAILABLE
    assert 0.9 <= time.monotonic() - started < 3.0
    assert proxy.counts()["StreamingPull"]["closed"] == 1


def test_permission_denied_on_the_matching_subscription_only(proxy, channel, names):
    stream = streaming_pull(channel, names.subscription)
    publish(channel, names.topic, b"before the denial")
    next(iter(stream))

    proxy.deny(Code.PERMISSION_DENIED, subscription=re.escape(names.subscription))

    with pytest.raises(grpc.RpcError) as open_stream:
        for _ in stream:
            pass
    with pytest.raises(grpc.RpcError) as new_stream:
        for _ in streaming_pull(channel, names.subscription):
            pass
    publish(channel, names.topic, b"the topic is not denied")
    assert open_stream.value.code() == new_stream.value.code() == Code.PERMISSION_DENIED


def test_not_found_on_every_call_until_allowed(proxy, channel, names):
    proxy.deny(Code.NOT_FOUND)

    with pytest.raises(grpc.RpcError) as denied:
        publish(channel, names.topic, b"denied")
    proxy.allow()

    assert denied.value.code() == Code.NOT_FOUND
    assert publish(channel, names.topic, b"allowed again")


def test_no_message_is_lost_while_streams_close_every_two_seconds(proxy, channel, emulator, names):
    proxy.close_streams_after(2.0)
    sent: list[str] = []

    def send() -> None:
        with grpc.insecure_channel(emulator.address) as direct:
            for i in range(200):
                sent.append(publish(direct, names.topic, f"m{i}".encode()))
                time.sleep(0.03)

    publisher = threading.Thread(target=send)
    publisher.start()
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    # Reopen at once after each close, with the same client_id, as the listener does.
    while time.monotonic() < deadline and (len(seen) < 200 or publisher.is_alive()):
        stream = streaming_pull(channel, names.subscription, client_id="no-loss")
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), stream.call.cancel)
        timer.start()
        try:
            for response in stream:
                stream.ack([m.ack_id for m in response.received_messages])
                seen |= {m.message.message_id for m in response.received_messages}
        except grpc.RpcError as err:
            assert err.code() in (Code.UNAVAILABLE, Code.CANCELLED)
        finally:
            timer.cancel()
    publisher.join(timeout=30)

    assert len(sent) == 200
    assert set(sent) <= seen, f"{len(set(sent) - seen)} of 200 never received"
    assert proxy.counts()["StreamingPull"]["closed"] >= 3
