"""The open-loop generator against a small local server, and how answers are classified."""

import asyncio
import json
import threading
import time

import pytest

from bench import loadgen
from bench.e2e import check, figure_400
from devstack.processes import free_port


@pytest.fixture
def echo_server():
    """A keep-alive HTTP server on loopback that answers each POST with its body, 10 ms later."""
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                await asyncio.sleep(0.01)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def serve():
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port))
        ready.set()
        loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


def test_every_scheduled_request_is_sent_and_timed(echo_server):
    result = loadgen.run(
        [echo_server], "/rides", lambda i: json.dumps({"i": i}).encode(), rate=100, duration_s=0.5
    )

    assert sorted(o.index for o in result.outcomes) == list(range(50))
    assert not result.errors
    assert all(o.latency_ms >= 10 for o in result.outcomes)  # the server's delay is counted
    assert all(loadgen.decode(o)["i"] == o.index for o in result.outcomes)
    assert result.client_cpu_cores > 0


def test_requests_keep_their_schedule_when_answers_are_late(echo_server):
    started = time.monotonic()

    result = loadgen.run([echo_server], "/", lambda i: b"{}", rate=200, duration_s=0.5)

    # 100 requests 5 ms apart, each answered 10 ms later: the client never waits for answers.
    assert time.monotonic() - started < 2
    assert result.max_connections >= 2
    assert max(o.send_lag_ms for o in result.outcomes) < 50


def test_refused_connections_are_counted_not_raised():
    url = f"http://127.0.0.1:{free_port()}"

    result = loadgen.run([url], "/", lambda i: b"{}", rate=50, duration_s=0.1, timeout_s=1)

    assert len(result.errors) == 5
    assert result.outcomes == []


def outcome(index: int, status: int, body: dict) -> loadgen.Outcome:
    return loadgen.Outcome(index, index / 10, 5.0, status, json.dumps(body).encode(), 0.0)


def test_answers_are_classified_right_crossed_pending_and_failed():
    rides = [{"trip_distance": 1.0}, {"trip_distance": 9.0}]
    expected = [4.0, 20.0]
    result = loadgen.OpenLoopResult(
        rate=10, duration_s=0.6,
        outcomes=[
            outcome(0, 200, {"ride_id": "r0", "duration_final": 4.0}),
            outcome(1, 200, {"ride_id": "r1", "duration_final": 4.0}),  # another ride's figure
            outcome(2, 202, {"ride_id": "r2", "status": "pending"}),
            outcome(3, 503, {"error": {"code": 503}}),
        ],
        errors=["4: ConnectionError"],
    )  # fmt: skip

    found = check(result, rides, expected, ride_ids=lambda i: f"r{i}")

    assert (found["right"], found["crossed"], found["pending_202"]) == (1, 1, 1)
    assert found["failed"] == 2
    assert found["unanswered"] == 1  # request 5 got neither an answer nor an error
    assert found["latency_ms"]["count"] == 2


def steady_run(rate: float, answered_per_s: float) -> dict:
    """What `check` reports for a run whose latency stayed flat, answering at a given pace."""
    return {
        "latency_ms": {"count": 100, "p50": 90.0, "p99": 150.0},
        "drift": 1.1, "right": 100, "sent": 100, "crossed": 0, "failed": 0, "unanswered": 0,
        "pending_202": 0, "offered_per_s": rate, "answered_per_s": answered_per_s,
    }  # fmt: skip


@pytest.mark.parametrize(("answered", "met"), [(399.2, True), (380.0, True), (364.3, False)])
def test_400_per_second_is_met_only_when_the_stream_keeps_pace(answered, met):
    assert figure_400(steady_run(400, answered), "conditions").met is met


def test_400_per_second_is_not_met_when_latency_climbs():
    run = steady_run(400, 399.0) | {"drift": 2.34}

    assert figure_400(run, "conditions").met is False
