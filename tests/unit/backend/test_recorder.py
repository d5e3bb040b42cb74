"""recorder.Recorder: results gathered into batches, each acked once recorded, on its stream."""

import threading
import time
from collections.abc import Sequence

import pytest
from google.pubsub_v1 import PubsubMessage, ReceivedMessage

from backend_service import pull_stream
from backend_service import recorder as recorder_module
from backend_service.pull_stream import _PullResponse
from backend_service.recorder import Recorder
from backend_service.ride_store import StoreUnavailable
from devstack.processes import wait_until
from ride_stream.messages import encode_result
from tests.kit.grpc_fakes import END, FakeStreamChannel, FakeSubscriberClient

WAIT_S = 5.0


class FakeMessage:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.acked = threading.Event()
        self.nacked = threading.Event()

    def ack(self) -> None:
        self.acked.set()

    def nack(self) -> None:
        self.nacked.set()


class FakeSubscriber:
    """The recorder on a fake channel; deliver() hands it messages as its stream would."""

    def __init__(self) -> None:
        self.channel = FakeStreamChannel()
        self.client = FakeSubscriberClient(self.channel)
        self.recorder: Recorder | None = None

    def callback(self, message: FakeMessage) -> None:
        assert self.recorder is not None
        self.recorder._on_message(message)  # type: ignore[arg-type]

    def deliver(self, *results: tuple[str, float, str]) -> list[FakeMessage]:
        messages = [FakeMessage(encode_result(*r)) for r in results]
        for message in messages:
            self.callback(message)
        return messages


class Store:
    """Records batches; `refuse` says what to answer for a ride_id (or raises for all)."""

    def __init__(self, refuse: set[str] = frozenset(), down: bool = False) -> None:
        self.batches: list[list[tuple[str, float, str]]] = []
        self.refuse, self.down = refuse, down

    def record(self, results: Sequence[tuple[str, float, str]]) -> list[object]:
        self.batches.append(list(results))
        if self.down:
            raise StoreUnavailable("record: ServiceUnavailable")
        return [
            StoreUnavailable("record: ABORTED") if r[0] in self.refuse else True for r in results
        ]


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(recorder_module, "RETRY_AFTER_S", 0.0)


def started(store: Store, batch_wait_s: float = 0.2) -> tuple[Recorder, FakeSubscriber]:
    subscriber = FakeSubscriber()
    recorder = Recorder(subscriber.client, "projects/p/subscriptions/s", store.record, batch_wait_s)
    subscriber.recorder = recorder
    recorder.start()
    return recorder, subscriber


def settled(messages: list[FakeMessage]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if all(m.acked.is_set() or m.nacked.is_set() for m in messages):
            return
        time.sleep(0.01)
    raise AssertionError("messages neither acked nor nacked in time")


def test_results_that_arrive_together_are_recorded_in_one_batch_then_acked():
    store = Store()
    recorder, subscriber = started(store)
    messages = subscriber.deliver(("a", 7.0, "1"), ("b", 8.0, "1"), ("c", 9.0, "1"))
    settled(messages)
    recorder.close()
    assert store.batches == [[("a", 7.0, "1"), ("b", 8.0, "1"), ("c", 9.0, "1")]]
    assert all(m.acked.is_set() and not m.nacked.is_set() for m in messages)


def test_a_result_the_store_refused_goes_back_to_pubsub_the_others_are_acked():
    store = Store(refuse={"b"})
    recorder, subscriber = started(store)
    a, b = subscriber.deliver(("a", 7.0, "1"), ("b", 8.0, "1"))
    settled([a, b])
    recorder.close()
    assert a.acked.is_set() and not a.nacked.is_set()
    assert b.nacked.is_set() and not b.acked.is_set()


def test_a_store_that_answers_nothing_returns_the_whole_batch_to_pubsub():
    store = Store(down=True)
    recorder, subscriber = started(store)
    messages = subscriber.deliver(("a", 7.0, "1"), ("b", 8.0, "1"))
    settled(messages)
    recorder.close()
    assert all(m.nacked.is_set() and not m.acked.is_set() for m in messages)


def test_an_unreadable_result_is_acked_and_never_recorded():
    store = Store()
    recorder, subscriber = started(store, batch_wait_s=0.0)
    unreadable = FakeMessage(b"not json")
    subscriber.callback(unreadable)
    assert unreadable.acked.is_set()
    recorder.close()
    assert store.batches == []


def test_results_still_gathering_at_close_go_back_to_pubsub():
    store = Store()
    recorder, subscriber = started(store, batch_wait_s=30.0)
    messages = subscriber.deliver(("a", 7.0, "1"))
    recorder.close(timeout_s=WAIT_S)
    assert messages[0].nacked.is_set() and not messages[0].acked.is_set()
    assert store.batches == []


def test_a_batch_that_fails_unexpectedly_goes_back_and_the_writer_carries_on():
    store = Store()
    calls = []

    def record(results):
        calls.append(list(results))
        if len(calls) == 1:
            raise RuntimeError("a bug in the store")
        return store.record(results)

    subscriber = FakeSubscriber()
    recorder = Recorder(subscriber.client, "projects/p/subscriptions/s", record, 0.05)
    subscriber.recorder = recorder
    recorder.start()
    first = subscriber.deliver(("a", 7.0, "1"))
    settled(first)
    second = subscriber.deliver(("b", 8.0, "1"))
    settled(second)
    recorder.close()
    assert first[0].nacked.is_set() and not first[0].acked.is_set()
    assert second[0].acked.is_set()


def results_response(*acked: tuple[str, str]) -> object:
    """A StreamingPull response with one result per (ack_id, ride_id)."""
    received = [
        ReceivedMessage.pb()(
            ack_id=ack_id, message=PubsubMessage.pb()(data=encode_result(ride_id, 7.0, "1"))
        )
        for ack_id, ride_id in acked
    ]
    return _PullResponse(received_messages=received)


def test_on_its_stream_a_result_is_acked_after_its_write_a_refused_one_nacked():
    store = Store(refuse={"b"})
    recorder, subscriber = started(store, batch_wait_s=0.05)
    call = subscriber.channel.next_call()
    wait_until(lambda: call.sent, WAIT_S, what="the opening request")
    opening = call.sent[0]

    call.responses.put(results_response(("a1", "a"), ("b1", "b")))

    wait_until(lambda: call.acked() and nacked(call), WAIT_S, what="the ack and the nack")
    assert store.batches == [[("a", 7.0, "1"), ("b", 7.0, "1")]]
    assert call.acked() == ["a1"] and nacked(call) == [("b1", 0)]
    assert opening.subscription == "projects/p/subscriptions/s"
    assert opening.stream_ack_deadline_seconds == recorder_module.LEASE_S == 10
    assert opening.max_outstanding_messages == recorder_module.MAX_OUTSTANDING
    call.responses.put(END)
    recorder.close()


def test_results_gathering_when_the_recorder_closes_are_nacked_on_its_stream():
    recorder, subscriber = started(Store(), batch_wait_s=30.0)
    call = subscriber.channel.next_call()
    call.responses.put(results_response(("a1", "a")))
    time.sleep(0.3)  # the writer has it, and gathers more for 30 s

    recorder.close(timeout_s=WAIT_S)

    assert nacked(call) == [("a1", 0)] and call.acked() == []


def nacked(call) -> list[tuple[str, int]]:
    pairs: list[tuple[str, int]] = []
    for request in call.sent:
        ids, seconds = request.modify_deadline_ack_ids, request.modify_deadline_seconds
        pairs += zip(ids, seconds, strict=True)
    return pairs


def test_a_wait_that_spanned_a_freeze_reopens_the_stream_with_no_request_to_do_it():
    subscriber = FakeSubscriber()
    channels: list[FakeStreamChannel] = []

    def new_channel() -> FakeStreamChannel:
        channels.append(subscriber.channel)
        return subscriber.channel

    recorder = Recorder(
        subscriber.client, "projects/p/subscriptions/s", Store().record, channels=new_channel
    )
    recorder.start()
    first = subscriber.channel.next_call()
    wait_until(lambda: first.sent, WAIT_S, what="the opening request")

    recorder._woke(pull_stream.FROZEN_AFTER_S + 1.0)  # as the heartbeat's wait returns late

    second = subscriber.channel.next_call()
    assert second is not first and len(channels) == 2  # on a new connection
    wait_until(lambda: second.sent, WAIT_S, what="the reopened stream's opening request")
    assert second.sent[0].client_id == first.sent[0].client_id
    recorder.close()
