"""The two services share no code: these tests hold both sides to one message format."""

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from backend_service.rides import InvalidRide, parse_ride
from backend_service.stream import ResultListener
from predictor_service.envelope import encode_result, parse_envelope
from predictor_service.errors import PermanentError
from predictor_service.rides import decode_ride
from tests.helpers import push_envelope

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
    assert decoded.pickup_datetime == parsed.local_datetime


@pytest.mark.parametrize("ride", VALID + INVALID)
def test_both_sides_agree_on_what_a_valid_ride_is(ride):
    message = json.dumps({"ride_id": "ride-1", "features": ride}).encode()
    try:
        decode_ride(message)
        predictor_accepts = True
    except PermanentError:
        predictor_accepts = False

    assert backend_accepts(ride) == (ride in VALID)
    # The backend fills a missing datetime before publishing; the predictor requires one.
    assert predictor_accepts == (ride in VALID and "datetime" in ride)


def test_result_published_by_the_predictor_is_read_by_the_backend():
    received: list = []
    listener = ResultListener(
        client=None, project_id="p", results_topic="results",
        on_result=lambda *args: received.append(args), ttl_s=86400, reply_to="backend-1",
    )  # fmt: skip
    message = SimpleNamespace(
        data=encode_result("ride-1", 12.34, "ride-duration/2"),
        attributes={"ride_id": "ride-1", "reply_to": "backend-1"},
        ack=lambda: None,
    )

    listener._on_message(message)

    assert received == [("ride-1", 12.34, "ride-duration/2")]
