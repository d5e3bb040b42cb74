"""Group-commit publishing (both services' copies) with a hand-written fake gRPC channel."""

import ast
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from backend_service import batching as backend_batching
from predictor_service import batching as predictor_batching

TOPIC = "projects/p/topics/results"


class FakeChannel:
    """Records each Publish request; can hold calls until `hold` is set, or fail."""

    def __init__(self) -> None:
        self.requests: list = []
        self.metadata: list = []
        self.fail = False
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.threads: list[str] = []
        self.lock = threading.Lock()

    def unary_unary(self, method, request_serializer, response_deserializer):
        assert method == "/google.pubsub.v1.Publisher/Publish"

        def call(request, timeout, metadata):
            with self.lock:  # numbered in the order the RPCs start
                self.threads.append(threading.current_thread().name)
                self.requests.append(request)
                self.metadata.append(metadata)
                number = len(self.requests)
            self.entered.set()
            self.hold.wait(5)
            if self.fail:
                raise ConnectionError("emulated outage")
            return predictor_batching._Response(
                message_ids=[f"{number}-{i}" for i in range(len(request.messages))]
            )

        return call


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


@pytest.fixture(params=[predictor_batching, backend_batching], ids=["predictor", "backend"])
def batching(request):
    return request.param


@pytest.fixture
def publisher(batching, channel: FakeChannel):
    client = SimpleNamespace(transport=SimpleNamespace(grpc_channel=channel))
    return batching.GroupCommitPublisher(client, timeout_s=5)


@pytest.fixture
def in_flight(publisher, channel: FakeChannel):
    """Start a publish whose RPC the channel holds until `channel.hold` is set."""
    pool = ThreadPoolExecutor(1)
    channel.hold.clear()

    def start(data: bytes = b"first") -> Future:
        first = pool.submit(lambda: publisher.publish(TOPIC, data).result(5))
        assert channel.entered.wait(5)
        return first

    yield start
    channel.hold.set()
    pool.shutdown()


def test_both_services_carry_the_same_publisher():
    def code(package: str) -> str:
        tree = ast.parse(Path(f"{package}/batching.py").read_text())
        tree.body = tree.body[1:]  # the module docstring says which copy it is
        return ast.dump(tree)

    assert code("predictor_service") == code("backend_service")


def test_an_idle_publish_is_sent_by_its_own_thread_and_done_on_return(publisher, channel):
    future = publisher.publish(TOPIC, b"now")

    assert future.done() and future.result() == "1-0"
    assert channel.threads == [threading.current_thread().name]


def test_a_linger_holds_what_queues_behind_an_rpc_but_not_an_idle_publish(batching, channel):
    client = SimpleNamespace(transport=SimpleNamespace(grpc_channel=channel))
    publisher = batching.GroupCommitPublisher(client, timeout_s=5, linger_s=0.2)
    assert publisher.publish(TOPIC, b"idle").done()  # sent at once, by this thread

    channel.hold.clear()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: publisher.publish(TOPIC, b"in flight").result(5))
        wait_for_rpcs(channel, 2)
        started = time.monotonic()
        queued = [publisher.publish(TOPIC, b"a"), publisher.publish(TOPIC, b"b")]
        channel.hold.set()
        ids = [f.result(5) for f in queued]

    assert time.monotonic() - started >= 0.2
    assert ids == ["3-0", "3-1"]
    assert channel.threads == ["MainThread", channel.threads[1], "publisher-0"]


def test_publish_resolves_to_the_message_id(publisher, channel):
    message_id = publisher.publish(TOPIC, b"data", ride_id="r1").result(5)

    assert message_id == "1-0"
    sent = channel.requests[0]
    assert sent.topic == TOPIC
    assert sent.messages[0].data == b"data"
    assert dict(sent.messages[0].attributes) == {"ride_id": "r1"}
    assert channel.metadata[0] == [("x-goog-request-params", f"topic={TOPIC}")]


def wait_for_rpcs(channel: FakeChannel, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(channel.requests) < count and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(channel.requests) == count


def test_messages_queued_during_an_rpc_leave_together_in_the_next(publisher, channel, in_flight):
    first = in_flight()  # sent by its own thread
    second = publisher.publish(TOPIC, b"second")  # queued: the sender thread takes it
    wait_for_rpcs(channel, 2)
    waiting = [publisher.publish(TOPIC, f"m{i}".encode()) for i in range(3)]
    channel.hold.set()

    assert (first.result(5), second.result(5)) == ("1-0", "2-0")
    assert [f.result(5) for f in waiting] == ["3-0", "3-1", "3-2"]
    assert len(channel.requests) == 3
    assert channel.threads[1:] == ["publisher-0", "publisher-0"]


def test_many_threads_each_get_their_own_message_id(publisher, channel):
    def publish(i: int) -> tuple[bytes, str]:
        data = f"m{i}".encode()
        return data, publisher.publish(TOPIC, data).result(5)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(publish, range(400)))

    sent = {}
    for number, request in enumerate(channel.requests, start=1):
        for index, message in enumerate(request.messages):
            sent[f"{number}-{index}"] = message.data
    assert len({message_id for _, message_id in answers}) == 400
    assert all(sent[message_id] == data for data, message_id in answers)


def test_a_failed_rpc_fails_its_messages_and_the_next_goes_out(publisher, channel):
    channel.fail = True
    with pytest.raises(ConnectionError):
        publisher.publish(TOPIC, b"lost").result(5)

    channel.fail = False
    assert publisher.publish(TOPIC, b"next").result(5) == "2-0"


def busy_sender(publisher, channel: FakeChannel, in_flight) -> None:
    """Hold an RPC sent by a caller and one sent by the sender thread: what comes next queues."""
    in_flight(b"1")
    publisher.publish(TOPIC, b"2")
    wait_for_rpcs(channel, 2)


def test_a_message_that_would_overflow_the_rpc_waits_for_the_next(
    batching, publisher, channel, in_flight, monkeypatch
):
    monkeypatch.setattr(batching, "MAX_BYTES", 10)
    busy_sender(publisher, channel, in_flight)
    small, big = publisher.publish(TOPIC, b"12345"), publisher.publish(TOPIC, b"123456789")
    channel.hold.set()

    assert [f.result(5) for f in (small, big)] == ["3-0", "4-0"]


def test_messages_to_two_topics_go_in_one_rpc_each(publisher, channel, in_flight):
    busy_sender(publisher, channel, in_flight)
    a1, a2 = publisher.publish(TOPIC, b"a1"), publisher.publish(TOPIC, b"a2")
    b = publisher.publish("projects/p/topics/dead-letters", b"b")
    channel.hold.set()

    assert sorted(f.result(5)[0] for f in (a1, a2, b)) == ["3", "3", "4"]
    assert {r.topic: len(r.messages) for r in channel.requests[2:]} == {
        TOPIC: 2,
        "projects/p/topics/dead-letters": 1,
    }
