"""The backend's plain parts: validation, coarse estimator, result store, config, stream ends."""

import json
import queue
from concurrent.futures import Future
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from backend_service import stream
from backend_service.coarse import CoarseEstimator
from backend_service.config import Config, ConfigError
from backend_service.results import ResultStore, RideConflict
from backend_service.rides import InvalidRide, parse_ride
from backend_service.stream import ResultListener, RidePublisher, StreamUnavailable

NOW = datetime(2021, 2, 3, 13, 30, tzinfo=UTC)


def test_naive_datetime_is_new_york_time():
    ride = parse_ride(
        {"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1, "datetime": "2021-02-03T08:30"},
        NOW,
    )

    assert ride.local_datetime == datetime(2021, 2, 3, 8, 30)


def test_offset_datetime_is_converted_to_new_york_time():
    ride = parse_ride(
        {"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1,
         "datetime": "2021-02-03T13:30:00+00:00"},
        NOW,
    )  # fmt: skip

    assert ride.local_datetime == datetime(2021, 2, 3, 8, 30)


def test_missing_datetime_is_now():
    ride = parse_ride({"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1}, NOW)

    assert ride.local_datetime == datetime(2021, 2, 3, 8, 30)


@pytest.mark.parametrize("payload", [[], "ride", None, 3])
def test_body_that_is_not_an_object_is_invalid(payload):
    with pytest.raises(InvalidRide) as err:
        parse_ride(payload, NOW)
    assert list(err.value.fields) == ["body"]


@pytest.mark.parametrize("value", [True, 1.5, float("nan")])
def test_zone_must_be_a_plain_integer(value):
    with pytest.raises(InvalidRide) as err:
        parse_ride({"PULocationID": value, "DOLocationID": 2, "trip_distance": 1}, NOW)
    assert list(err.value.fields) == ["PULocationID"]


@pytest.mark.parametrize("value", [float("inf"), True, None, -0.1])
def test_distance_must_be_a_finite_positive_number(value):
    with pytest.raises(InvalidRide) as err:
        parse_ride({"PULocationID": 1, "DOLocationID": 2, "trip_distance": value}, NOW)
    assert list(err.value.fields) == ["trip_distance"]


def test_year_far_from_now_is_invalid():
    with pytest.raises(InvalidRide) as err:
        parse_ride(
            {"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1, "datetime": "0001-01-01"},
            NOW,
        )
    assert list(err.value.fields) == ["datetime"]


def small_estimator() -> CoarseEstimator:
    return CoarseEstimator(
        knots=(0.0, 1.0, 10.0),
        minutes=(2.0, 6.0, 40.0),
        hour_offsets=(tuple([0.0] * 8 + [3.0] + [0.0] * 15), tuple([-1.0] * 24)),
        pair_offsets={(74, 75): 2.0},
        version="coarse-test",
    )


def test_coarse_interpolates_between_knots():
    estimate = small_estimator().estimate(1, 2, 5.5, datetime(2021, 2, 3, 12))

    assert estimate == pytest.approx(23.0)


def test_coarse_adds_hour_and_pair_offsets():
    estimator = small_estimator()

    rush = estimator.estimate(74, 75, 1.0, datetime(2021, 2, 3, 8))  # Wednesday 8 am
    weekend = estimator.estimate(1, 2, 1.0, datetime(2021, 2, 6, 8))  # Saturday

    assert rush == pytest.approx(6.0 + 3.0 + 2.0)
    assert weekend == pytest.approx(5.0)


def test_coarse_is_clamped_to_the_trained_range():
    estimator = small_estimator()

    assert estimator.estimate(1, 2, 150.0, datetime(2021, 2, 3, 12)) == 40.0
    assert estimator.estimate(1, 2, 0.01, datetime(2021, 2, 6, 12)) == pytest.approx(1.0)


def test_coarse_survives_a_json_round_trip(tmp_path):
    path = tmp_path / "coarse.json"
    path.write_text(small_estimator().to_json())

    assert CoarseEstimator.load(path) == small_estimator()


def test_coarse_refuses_another_format(tmp_path):
    path = tmp_path / "coarse.json"
    path.write_text(json.dumps({"format": "something-else"}))

    with pytest.raises(ValueError, match="format"):
        CoarseEstimator.load(path)


def test_shipped_coarse_model_loads():
    estimator = CoarseEstimator.load()

    assert len(estimator.pair_offsets) > 1000
    assert 5 < estimator.estimate(74, 75, 2.5, datetime(2021, 2, 3, 8, 30)) < 30


def test_first_result_wins():
    store = ResultStore()
    record = store.begin("r1", b"fp", 5.0)

    assert store.complete("r1", 7.0, "v1")
    assert not store.complete("r1", 99.0, "v2")
    assert (record.duration_final, record.model_version) == (7.0, "v1")
    assert record.done.is_set()


def test_result_for_an_unknown_ride_is_ignored():
    assert not ResultStore().complete("nobody", 1.0, "v1")


def test_reusing_a_ride_id_for_another_ride_conflicts():
    store = ResultStore()
    store.begin("r1", b"fp-a", 5.0)

    with pytest.raises(RideConflict):
        store.begin("r1", b"fp-b", 5.0)


def test_store_forgets_the_oldest_rides_beyond_capacity():
    store = ResultStore(capacity=2)
    for ride_id in ("a", "b", "c"):
        store.begin(ride_id, b"fp", 1.0)

    assert store.get("a") is None and store.get("c") is not None
    assert len(store) == 2


def test_config_reads_the_documented_variables():
    config = Config.from_env(
        {"PROJECT_ID": "p", "BACKEND_PUSH_STREAM": "in", "BACKEND_PULL_STREAM": "out",
         "RESULT_TIMEOUT_S": "2.5", "MAX_BODY_BYTES": "1000"}
    )  # fmt: skip

    assert (config.rides_topic, config.results_topic) == ("in", "out")
    assert config.result_timeout_s == 2.5 and config.max_body_bytes == 1000


def test_config_lists_every_problem():
    with pytest.raises(ConfigError) as err:
        Config.from_env({"RESULT_TIMEOUT_S": "soon", "PUBLISH_TIMEOUT_S": "-1", "LOG_LEVEL": "x"})

    message = str(err.value)
    for name in ("PROJECT_ID", "RESULT_TIMEOUT_S", "PUBLISH_TIMEOUT_S", "LOG_LEVEL"):
        assert name in message


class FakePublisherClient:
    def __init__(self, outcome: object) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, bytes, dict[str, object]]] = []

    def publish(self, topic: str, data: bytes, **kwargs: object) -> Future:
        self.calls.append((topic, data, kwargs))
        future: Future = Future()
        if isinstance(self.outcome, Exception):
            future.set_exception(self.outcome)
        else:
            future.set_result(self.outcome)
        return future


def test_publisher_sends_ride_id_and_reply_to_as_attributes():
    client = FakePublisherClient("m-1")
    publisher = RidePublisher(client, "p", "rides", timeout_s=1)

    assert publisher.publish(b"{}", ride_id="r1", reply_to="me") == "m-1"
    topic, _, kwargs = client.calls[0]
    assert topic == "projects/p/topics/rides"
    assert kwargs["ride_id"] == "r1" and kwargs["reply_to"] == "me"


def test_publisher_failure_is_stream_unavailable_and_unhealthy():
    publisher = RidePublisher(FakePublisherClient(TimeoutError("slow")), "p", "rides", 1)

    with pytest.raises(StreamUnavailable):
        publisher.publish(b"{}", ride_id="r1", reply_to="me")
    assert not publisher.healthy


def message(data: object, **attributes: str) -> SimpleNamespace:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    msg = SimpleNamespace(data=raw, attributes=attributes, acked=False)
    msg.ack = lambda: setattr(msg, "acked", True)
    return msg


def listener(results: list) -> ResultListener:
    return ResultListener(
        client=None, project_id="p", results_topic="results",
        on_result=lambda *args: results.append(args), ttl_s=86400, reply_to="me",
    )  # fmt: skip


def test_listener_delivers_its_own_results():
    results: list = []
    msg = message({"ride_id": "r1", "duration_final": 7.5, "model_version": "v"}, reply_to="me")

    listener(results)._on_message(msg)

    assert results == [("r1", 7.5, "v")]
    assert msg.acked


def test_listener_acks_and_ignores_other_processes_results():
    results: list = []
    msg = message({"ride_id": "r1", "duration_final": 7.5, "model_version": "v"}, reply_to="you")

    listener(results)._on_message(msg)

    assert results == []
    assert msg.acked


def test_listener_acks_and_ignores_unreadable_results():
    results: list = []
    msg = message(b"\xff not json", reply_to="me")

    listener(results)._on_message(msg)

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
