"""Group-commit publishing with a hand-written fake gRPC channel."""

import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace

import grpc
import pytest

from devstack.processes import wait_until
from ride_stream import group_commit as batching
from tests.kit.grpc_fakes import FakeRpcError

TOPIC = "projects/p/topics/results"


class FakeChannel:
    """Records each Publish request; can hold calls until `hold` is set, or fail.

    `fail` makes every call raise ConnectionError; `errors` are raised, one per call, first;
    `refuse` makes any request holding a message with that data fail with INVALID_ARGUMENT.
    """

    def __init__(self) -> None:
        self.requests: list = []
        self.metadata: list = []
        self.timeouts: list = []
        self.fail = False
        self.errors: list[grpc.StatusCode] = []
        self.refuse: bytes | None = None
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
                self.timeouts.append(timeout)
                number = len(self.requests)
                error = self.errors.pop(0) if self.errors else None
            self.entered.set()
            self.hold.wait(5)
            if self.fail:
                raise ConnectionError("emulated outage")
            if error is not None:
                raise FakeRpcError(error)
            if any(m.data == self.refuse for m in request.messages):
                raise FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT)
            return batching._Response(
                message_ids=[f"{number}-{i}" for i in range(len(request.messages))]
            )

        return call


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


def make_publisher(channel: FakeChannel, **options) -> batching.GroupCommitPublisher:
    client = SimpleNamespace(transport=SimpleNamespace(grpc_channel=channel))
    return batching.GroupCommitPublisher(client, **{"timeout_s": 5, "backoff_s": 0.001} | options)


@pytest.fixture
def publisher(channel: FakeChannel):
    """One RPC in flight at a time: what arrives meanwhile queues for the sender thread."""
    return make_publisher(channel, max_in_flight=1)


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


def test_an_idle_publish_is_sent_by_its_own_thread_and_done_on_return(publisher, channel):
    future = publisher.publish(TOPIC, b"now")

    assert future.done() and future.result() == "1-0"
    assert channel.threads == [threading.current_thread().name]


def test_a_linger_holds_what_queues_behind_an_rpc_but_not_an_idle_publish(channel):
    publisher = make_publisher(channel, linger_s=0.2, max_in_flight=1)
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
    with contextlib.suppress(TimeoutError):  # the assertion below says what came instead
        wait_until(lambda: len(channel.requests) >= count, 5, interval_s=0.001)
    assert len(channel.requests) == count


def test_messages_queued_during_an_rpc_leave_together_in_the_next(publisher, channel, in_flight):
    first = in_flight()  # sent by its own thread; the one slot is taken
    waiting = [publisher.publish(TOPIC, f"m{i}".encode()) for i in range(3)]
    channel.hold.set()

    assert first.result(5) == "1-0"
    assert [f.result(5) for f in waiting] == ["2-0", "2-1", "2-2"]
    assert len(channel.requests) == 2
    assert channel.threads[1] == "publisher-0"


@pytest.mark.parametrize("in_flight", [1, 3], ids=["one RPC out", "three staggered RPCs out"])
def test_many_threads_each_get_their_own_message_id(channel, in_flight):
    publisher = make_publisher(channel, max_in_flight=in_flight, stagger_s=0.0005)

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
    """Hold the one RPC slot with a caller's RPC: what comes next queues."""
    in_flight(b"1")
    wait_for_rpcs(channel, 1)


def test_a_message_that_would_overflow_the_rpc_waits_for_the_next(
    publisher, channel, in_flight, monkeypatch
):
    monkeypatch.setattr(batching, "MAX_BYTES", 10)
    busy_sender(publisher, channel, in_flight)
    small, big = publisher.publish(TOPIC, b"12345"), publisher.publish(TOPIC, b"123456789")
    channel.hold.set()

    assert [f.result(5) for f in (small, big)] == ["2-0", "3-0"]


def test_messages_to_two_topics_go_in_one_rpc_each(publisher, channel, in_flight):
    busy_sender(publisher, channel, in_flight)
    a1, a2 = publisher.publish(TOPIC, b"a1"), publisher.publish(TOPIC, b"a2")
    b = publisher.publish("projects/p/topics/dead-letters", b"b")
    channel.hold.set()

    assert sorted(f.result(5)[0] for f in (a1, a2, b)) == ["2", "2", "3"]
    assert {r.topic: len(r.messages) for r in channel.requests[1:]} == {
        TOPIC: 2,
        "projects/p/topics/dead-letters": 1,
    }


def test_publishes_go_out_in_parallel_up_to_max_in_flight(channel):
    publisher = make_publisher(channel, max_in_flight=3, stagger_s=0)
    channel.hold.clear()
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(lambda i=i: publisher.publish(TOPIC, b"%d" % i)) for i in range(3)]
        wait_for_rpcs(channel, 3)  # three RPCs in flight at once, none waiting for another
        queued = publisher.publish(TOPIC, b"fourth")
        time.sleep(0.05)
        assert len(channel.requests) == 3 and not queued.done()
        channel.hold.set()
        assert all(f.result(5).result(5) for f in futures)

    assert queued.result(5) == "4-0"


def test_another_rpc_starts_only_once_the_youngest_has_been_out_the_stagger(channel):
    publisher = make_publisher(channel, max_in_flight=3, stagger_s=0.3)
    channel.hold.clear()
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        first = pool.submit(lambda: publisher.publish(TOPIC, b"first"))
        wait_for_rpcs(channel, 1)
        queued = [publisher.publish(TOPIC, b"a"), publisher.publish(TOPIC, b"b")]
        time.sleep(0.1)
        assert len(channel.requests) == 1  # a fast RPC would have ended by now
        wait_for_rpcs(channel, 2)  # the first is still out: the queue leaves beside it
        assert time.monotonic() - started >= 0.3
        assert [m.data for m in channel.requests[1].messages] == [b"a", b"b"]
        channel.hold.set()
        assert first.result(5).result(5) == "1-0"

    assert [f.result(5) for f in queued] == ["2-0", "2-1"]


def test_a_full_queue_fails_a_publish_at_once(channel):
    publisher = make_publisher(channel, max_in_flight=1, max_queued=2)
    channel.hold.clear()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: publisher.publish(TOPIC, b"in flight"))
        wait_for_rpcs(channel, 1)
        queued = [publisher.publish(TOPIC, b"a"), publisher.publish(TOPIC, b"b")]
        refused = publisher.publish(TOPIC, b"c")

        assert isinstance(refused.exception(0), batching.PublisherBusy)
        channel.hold.set()

    assert all(f.result(5) for f in queued)


@pytest.mark.parametrize("code", ["UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "UNKNOWN"])
def test_a_retryable_failure_is_retried_until_it_succeeds(channel, code):
    channel.errors = [grpc.StatusCode[code]] * 2

    assert make_publisher(channel).publish(TOPIC, b"m").result(5) == "3-0"
    assert len(channel.requests) == 3


def test_a_failure_the_client_does_not_retry_fails_at_once(channel):
    channel.errors = [grpc.StatusCode.PERMISSION_DENIED]

    with pytest.raises(grpc.RpcError):
        make_publisher(channel).publish(TOPIC, b"m").result(5)
    assert len(channel.requests) == 1


def test_retries_stop_at_the_publish_deadline(channel):
    channel.errors = [grpc.StatusCode.UNAVAILABLE] * 100
    publisher = make_publisher(channel, backoff_s=0.02)

    started = time.monotonic()
    with pytest.raises(batching.NotSentInTime):
        publisher.publish(TOPIC, b"m", timeout=0.2).result(5)

    assert time.monotonic() - started < 0.5
    assert all(0 < t <= 0.2 for t in channel.timeouts)  # each attempt within what is left


def test_the_publish_timeout_reaches_the_rpc(channel):
    make_publisher(channel, timeout_s=1.5).publish(TOPIC, b"default").result(5)
    make_publisher(channel).publish(TOPIC, b"given", timeout=0.7).result(5)

    assert 1.4 < channel.timeouts[0] <= 1.5 and 0.6 < channel.timeouts[1] <= 0.7


def test_a_message_the_service_refuses_fails_alone_not_its_batch(publisher, channel, in_flight):
    channel.refuse = b"bad"
    busy_sender(publisher, channel, in_flight)
    futures = [publisher.publish(TOPIC, data) for data in (b"a", b"bad", b"c", b"d")]
    channel.hold.set()

    with pytest.raises(grpc.RpcError):
        futures[1].result(5)
    assert all(futures[i].result(5) for i in (0, 2, 3))


@pytest.mark.parametrize(
    "attrs",
    [{"error": "é" * 513}, {"k" * 257: "v"}, {f"a{i}": "v" for i in range(101)}],
    ids=["value over 1,024 bytes", "key over 256 bytes", "101 attributes"],
)
def test_a_message_over_the_limits_fails_before_any_rpc(publisher, channel, attrs):
    future = publisher.publish(TOPIC, b"m", **attrs)

    assert isinstance(future.exception(0), batching.PublishRefused)
    assert channel.requests == []


def test_cut_utf8_counts_bytes_and_never_splits_a_character():
    assert batching.cut_utf8("é" * 600, 1024) == "é" * 512
    assert batching.cut_utf8("aé", 2) == "a"
    assert batching.cut_utf8("short", 1024) == "short"
