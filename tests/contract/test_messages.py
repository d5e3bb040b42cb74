"""Both sides of the message contract: what the backend publishes, the predictor reads back."""

import json
from datetime import UTC, datetime

import pytest

from backend_service.rides import InvalidRide, parse_ride
from devstack.pubsub import push_envelope
from predictor_service.envelope import parse_envelope
from ride_stream.messages import InvalidMessage, decode_ride, encode_result
from tests.kit.fakes import offline_listener, received_message

NOW = datetime(2021, 2, 3, 13, 30, tzinfo=UTC)
VALID = [
    {
        "PULocationID": 74,
        "DOLocationID": 75,
        "trip_distance": 2.5,
        "datetime": "2021-02-03T08:30:00",
    },
    {
        "PULocationID": 1,
        "DOLocationID": 265,
        "trip_distance": 200,
        "datetime": "2021-07-01T16:00:00+00:00",
    },
    {"PULocationID": 265, "DOLocationID": 1, "trip_distance": 0.01},
]
INVALID = [
    {"PULocationID": 0, "DOLocationID": 75, "trip_distance": 2.5},
    {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 200.5},
    {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 2, "datetime": "1999-12-31T23:00:00"},
    {"PULocationID": 74.0, "DOLocationID": 75, "trip_distance": 2},
]  # fmt: skip


def backend_accepts(ride: dict) -> bool:
    try:
        parse_ride(ride, NOW)
    except InvalidRide:
        return False
    return True


@pytest.mark.parametrize("ride", VALID)
def test_ride_published_by_the_backend_is_read_by_the_predictor(ride):
    parsed = parse_ride(ride, NOW)
    envelope = push_envelope(parsed.message("ride-1"), {"ride_id": "ride-1", "reply_to": "b"})

    decoded = decode_ride(parse_envelope(envelope).data)

    assert decoded.ride_id == "ride-1"
    assert (decoded.pickup_zone, decoded.dropoff_zone) == (parsed.pickup_zone, parsed.dropoff_zone)
    assert decoded.trip_distance == parsed.trip_distance
    assert decoded.pickup_datetime == parsed.pickup_datetime


@pytest.mark.parametrize("ride", VALID + INVALID)
def test_both_sides_agree_on_what_a_valid_ride_is(ride):
    message = json.dumps({"ride_id": "ride-1", "features": ride}).encode()
    try:
        decode_ride(message)
        predictor_accepts = True
    except InvalidMessage:
        predictor_accepts = False

    assert backend_accepts(ride) == (ride in VALID)
    # Without a publish time, the predictor needs the ride's own (the backend always sends one).
    assert predictor_accepts == (ride in VALID and "datetime" in ride)


@pytest.mark.parametrize("ride", VALID + INVALID)
def test_a_ride_without_datetime_is_taken_at_its_publish_time(ride):
    message = json.dumps({"ride_id": "ride-1", "features": ride}).encode()
    envelope = push_envelope(message, {"ride_id": "ride-1"})
    pushed = json.loads(envelope)
    pushed["message"]["publishTime"] = "2021-02-03T13:30:00.123456789Z"
    parsed = parse_envelope(json.dumps(pushed).encode())

    try:
        decoded = decode_ride(parsed.data, parsed.publish_time)
    except InvalidMessage:
        decoded = None

    assert (decoded is not None) == backend_accepts(ride)
    if decoded is not None and "datetime" not in ride:
        assert decoded.pickup_datetime == datetime(2021, 2, 3, 13, 30, 0, 123456, tzinfo=UTC)


def test_the_course_event_is_answered_with_its_ride_id():
    event = {
        "ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66},
        "ride_id": 123,
    }
    ride = decode_ride(json.dumps(event).encode(), NOW)
    received: list = []
    listener = offline_listener(received, reply_to="backend-1")

    result = encode_result(ride.result_ride_id, 9.5, "v")
    listener._on_message(received_message(result, ride_id=ride.ride_id, reply_to="backend-1"))

    assert json.loads(result)["ride_id"] == 123
    assert received == [("123", 9.5, "v")]


def test_result_published_by_the_predictor_is_read_by_the_backend():
    received: list = []
    listener = offline_listener(received, reply_to="backend-1")
    message = received_message(
        encode_result("ride-1", 12.34, "ride-duration/2"), ride_id="ride-1", reply_to="backend-1"
    )

    listener._on_message(message)

    assert received == [("ride-1", 12.34, "ride-duration/2")]
