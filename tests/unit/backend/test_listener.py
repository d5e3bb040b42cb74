"""backend_service.listener and pull_stream: the result listener and its StreamingPull."""

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.api_core.exceptions import ServiceUnavailable
from google.pubsub_v1 import PubsubMessage, ReceivedMessage

from backend_service import pull_stream as stream
from backend_service.listener import ResultListener
from devstack.processes import wait_until
from tests.kit.fakes import offline_listener, received_message
from tests.kit.grpc_fakes import (
    END,
    FakeRpcError,
    FakeStreamChannel,
    FakeSubscriberClient,
    permission_denied,
)


def test_listener_delivers_its_own_results():
    results: list = []
    msg = received_message(
        {"ride_id": "r1", "duration_final": 7.5, "model_version": "v"}, reply_to="me"
    )

    offline_listener(results)._on_message(msg)

    assert results == [("r1", 7.5, "v")]
    assert msg.acked


def test_listener_acks_and_ignores_other_processes_results():
    results: list = []
    msg = received_message(
        {"ride_id": "r1", "duration_final": 7.5, "model_version": "v"}, reply_to="you"
    )

    offline_listener(results)._on_message(msg)

    assert results == []
    assert msg.acked


def test_listener_acks_and_ignores_unreadable_results():
    results: list = []
    msg = received_message(b"\xff not json", reply_to="me")

    offline_listener(results)._on_message(msg)

    assert results == []
    assert msg.acked


def test_the_request_stream_opens_the_subscription_then_sends_acks_together():
    acks: queue.SimpleQueue = queue.SimpleQueue()
    requests = stream._requests("projects/p/subscriptions/s", acks)

    opening = next(requests)
    for ack_id in ("a1", "a2", "a3"):
        acks.put(ack_id)
    batch = next(requests)
    acks.put(None)

    assert opening.subscription == "projects/p/subscriptions/s"
    assert opening.stream_ack_deadline_seconds == stream.STREAM_ACK_DEADLINE_S
    assert opening.max_outstanding_messages == stream.MAX_OUTSTANDING
    assert list(batch.ack_ids) == ["a1", "a2", "a3"]
    assert list(requests) == []  # None ends the stream


def test_the_request_stream_sends_pending_acks_before_it_ends():
    acks: queue.SimpleQueue = queue.SimpleQueue()
    requests = stream._requests("s", acks)
    next(requests)
    acks.put("last")
    acks.put(None)

    assert [list(r.ack_ids) for r in requests] == [["last"]]


def test_an_idle_request_stream_sends_heartbeats(monkeypatch):
    monkeypatch.setattr(stream, "HEARTBEAT_S", 0.01)
    requests = stream._requests("s", queue.SimpleQueue())
    next(requests)

    heartbeat = next(requests)

    assert heartbeat.subscription == "" and list(heartbeat.ack_ids) == []


@dataclass
class Running:
    listener: ResultListener
    channel: FakeStreamChannel
    client: FakeSubscriberClient
    results: list


@pytest.fixture
def running(monkeypatch) -> Iterator[Callable[..., Running]]:
    """Start listeners on a fake channel, with the waits of their retries made short."""
    monkeypatch.setattr(stream, "FATAL_RETRY_S", 0.05)
    monkeypatch.setattr(stream, "RESUBSCRIBE_BACKOFF_S", (0.01,))
    monkeypatch.setattr(stream, "ACCEPT_GRACE_S", 0.05)
    started: list[ResultListener] = []

    def start(get_error: Exception | None = None, stall_first: bool = False) -> Running:
        channel = FakeStreamChannel()
        channel.stall_next = stall_first
        client = FakeSubscriberClient(channel)
        client.get_error = get_error
        results: list = []
        listener = ResultListener(
            client, "p", "results", on_result=lambda *r: results.append(r), ttl_s=86400,
            reply_to="me", channels=lambda: channel,
        )  # fmt: skip
        listener.start()
        started.append(listener)
        return Running(listener, channel, client, results)

    yield start
    for listener in started:
        listener.close(timeout_s=2)


def result_response(ack_id: str, ride_id: str = "r1") -> object:
    data = json.dumps({"ride_id": ride_id, "duration_final": 7.5, "model_version": "v"})
    message = PubsubMessage.pb()(data=data.encode(), attributes={"reply_to": "me"})
    received = ReceivedMessage.pb()(ack_id=ack_id, message=message)
    return stream._PullResponse(received_messages=[received])


def unavailable() -> FakeRpcError:
    return FakeRpcError(grpc.StatusCode.UNAVAILABLE)


def test_each_stream_carries_the_routing_header_and_the_same_client_id(running):
    r = running()
    first = r.channel.next_call()
    first.responses.put(unavailable())
    second = r.channel.next_call()

    wait_until(lambda: first.sent and second.sent, 5, what="both opening requests")
    header = ("x-goog-request-params", f"subscription={r.listener.subscription}")
    assert first.metadata == second.metadata == [header]
    assert first.sent[0].client_id == second.sent[0].client_id == "me"


def test_ready_once_the_subscription_reads_back_after_the_stream_opened(running):
    r = running()

    wait_until(lambda: r.listener.running, 5, what="the listener")


def test_not_ready_until_pubsub_answers_when_the_subscription_cannot_be_read(running):
    r = running(get_error=ServiceUnavailable("down"))
    call = r.channel.next_call()
    assert r.client.got.wait(5)
    time.sleep(0.1)
    assert not r.listener.running

    call.responses.put(result_response("a1"))

    wait_until(lambda: r.listener.running, 5, what="the listener")
    assert r.results == [("r1", 7.5, "v")]


def test_without_get_permission_a_stream_that_stays_open_is_accepted(running):
    r = running(get_error=permission_denied())

    wait_until(lambda: r.listener.running, 5, what="the listener")


def test_a_refused_stream_fails_readiness_with_the_reason_logged_once(running, caplog):
    r = running(get_error=ServiceUnavailable("down"))
    for _ in range(4):
        r.channel.next_call().responses.put(FakeRpcError(grpc.StatusCode.PERMISSION_DENIED))

    call = r.channel.next_call()  # still retried, slowly
    assert not r.listener.running
    assert r.listener.problem is not None and "PERMISSION_DENIED" in r.listener.problem
    refusals = [rec for rec in caplog.records if "refused" in rec.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelname == "ERROR"

    call.responses.put(result_response("a1"))  # the grant was fixed: Pub/Sub answers
    wait_until(lambda: r.listener.running, 5, what="the listener")
    assert r.listener.problem is None


def test_acks_a_dying_stream_did_not_send_go_on_the_next_stream(running):
    r = running(get_error=ServiceUnavailable("down"), stall_first=True)
    dying = r.channel.next_call()
    dying.responses.put(result_response("a1"))
    wait_until(lambda: r.results, 5, what="the result")
    dying.responses.put(unavailable())

    following = r.channel.next_call()

    wait_until(lambda: following.acked(), 5, what="the carried ack")
    assert following.acked() == ["a1"] and dying.acked() == []


def test_a_stream_that_lived_a_while_reopens_at_once_when_closed(running, monkeypatch):
    monkeypatch.setattr(stream, "STABLE_STREAM_S", 0.05)
    monkeypatch.setattr(stream, "RESUBSCRIBE_BACKOFF_S", (5.0,))
    r = running()
    call = r.channel.next_call()
    wait_until(lambda: r.listener.running, 5, what="the listener")
    time.sleep(0.1)

    started = time.monotonic()
    call.responses.put(END)
    r.channel.next_call()

    assert time.monotonic() - started < 1.0


def test_a_transient_failure_reopens_after_a_back_off(running, monkeypatch):
    monkeypatch.setattr(stream, "RESUBSCRIBE_BACKOFF_S", (0.4,))
    r = running(get_error=ServiceUnavailable("down"))

    started = time.monotonic()
    r.channel.next_call().responses.put(unavailable())
    r.channel.next_call()

    assert 0.2 <= time.monotonic() - started < 2.0


def test_a_lost_subscription_is_made_again_with_the_same_filter(running):
    r = running()
    first = r.listener.subscription
    r.channel.next_call().responses.put(FakeRpcError(grpc.StatusCode.NOT_FOUND))

    r.channel.next_call()

    assert len(r.client.created) == 2 and r.listener.subscription != first
    assert r.client.created[0]["filter"] == r.client.created[1]["filter"]
    assert r.client.deleted == [first]


def test_the_rides_waiting_go_out_again_once_the_subscription_is_replaced(running):
    r = running()
    replaced = threading.Event()
    r.listener.on_resubscribed = replaced.set
    r.channel.next_call().responses.put(FakeRpcError(grpc.StatusCode.NOT_FOUND))

    assert replaced.wait(5)
    assert len(r.client.created) == 2


def test_readyz_says_why_the_stream_is_refused(client, listener):
    listener.running = False
    listener.problem = "results stream refused: PERMISSION_DENIED: no pubsub.subscriptions.consume"

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.get_json()["reason"] == listener.problem
