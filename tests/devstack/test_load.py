"""devstack.load's open-loop generator against a small local server."""

import asyncio
import json
import threading
import time

import pytest

from devstack import load
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
    result = load.run(
        [echo_server], "/rides", lambda i: json.dumps({"i": i}).encode(), rate=100, duration_s=0.5
    )

    assert sorted(o.index for o in result.outcomes) == list(range(50))
    assert not result.errors
    assert all(o.latency_ms >= 10 for o in result.outcomes)  # the server's delay is counted
    assert all(load.decode(o)["i"] == o.index for o in result.outcomes)
    assert result.client_cpu_cores > 0


def test_requests_keep_their_schedule_when_answers_are_late(echo_server):
    started = time.monotonic()

    result = load.run([echo_server], "/", lambda i: b"{}", rate=200, duration_s=0.5)

    # 100 requests 5 ms apart, each answered 10 ms later: the client never waits for answers.
    assert time.monotonic() - started < 2
    assert result.max_connections >= 2
    assert max(o.send_lag_ms for o in result.outcomes) < 50


def test_refused_connections_are_counted_not_raised():
    url = f"http://127.0.0.1:{free_port()}"

    result = load.run([url], "/", lambda i: b"{}", rate=50, duration_s=0.1, timeout_s=1)

    assert len(result.errors) == 5
    assert result.outcomes == []


@pytest.fixture
def rides_backend():
    """A backend double: POST /rides answers 202 for every third ride first, else 200 with
    the duration the ride's body asks for; GET /rides/<id> answers it as done."""
    import http.server

    seen: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            ride = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen[ride["ride_id"]] = seen.get(ride["ride_id"], 0) + 1
            done = {"ride_id": ride["ride_id"], "duration_final": ride["trip_distance"]}
            if int(ride["ride_id"].rsplit("-", 1)[1]) % 3 == 0 and seen[ride["ride_id"]] == 1:
                self.answer(202, {"ride_id": ride["ride_id"], "status": "pending"})
            else:
                self.answer(200, done)

        def do_GET(self):
            ride_id = self.path.rsplit("/", 1)[1]
            distance = float(ride_id.rsplit("-", 2)[1])
            self.answer(200, {"ride_id": ride_id, "status": "done", "duration_final": distance})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("open_loop", [False, True])
def test_every_ride_is_driven_to_its_own_duration_at_the_rate(rides_backend, open_loop):
    rides = [
        load.Ride(f"r-{d}-{i}", {"ride_id": f"r-{d}-{i}", "trip_distance": d}, d)
        for i, d in enumerate([1.5, 2.5, 3.5, 4.5, 5.5, 6.5])
    ]
    rider = load.Rider([rides_backend], repost_after_s=5)

    run = load.run_load(rider, rides, rate_per_s=20, deadline_s=20, open_loop=open_loop)
    outcomes = run.wait()

    assert [o.ride.ride_id for o in outcomes] == [r.ride_id for r in rides]
    assert all(o.final == o.ride.expected and not o.crossed for o in outcomes)
    # Every third ride was pending at first and answered through GET /rides/<id>.
    assert [o.attempts[0].status for o in outcomes] == [202, 200, 200, 202, 200, 200]
    assert all(o.latency_s is not None and 0 <= o.latency_s < 5 for o in outcomes)
    assert load.double_answers(outcomes) == 0
