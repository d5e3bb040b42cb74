"""recorder.Recorder: results gathered into batches, each acked once recorded (a fake stream)."""

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from backend_service import recorder as recorder_module
from backend_service.recorder import Recorder
from backend_service.ride_store import StoreUnavailable
from ride_stream.messages import encode_result

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
    """subscribe() keeps the callback; deliver() calls it as the client's threads would."""

    def __init__(self) -> None:
        self.callback: Any = None

    def subscribe(self, subscription, callback, flow_control, scheduler) -> Future:
        self.callback = callback
        return Future()

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
    recorder = Recorder(subscriber, "projects/p/subscriptions/s", store.record, batch_wait_s)
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
    recorder = Recorder(subscriber, "projects/p/subscriptions/s", record, 0.05)
    recorder.start()
    first = subscriber.deliver(("a", 7.0, "1"))
    settled(first)
    second = subscriber.deliver(("b", 8.0, "1"))
    settled(second)
    recorder.close()
    assert first[0].nacked.is_set() and not first[0].acked.is_set()
    assert second[0].acked.is_set()
