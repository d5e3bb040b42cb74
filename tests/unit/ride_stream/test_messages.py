"""ride_stream.messages: the ride and result messages, every problem named."""

import json
from datetime import UTC, datetime

import pytest

from ride_stream.messages import (
    InvalidMessage,
    decode_result,
    decode_ride,
    encode_result,
    encode_ride,
)
from ride_stream.rides import NYC
from tests.kit.rides import RIDE, ride_message

RIDE_NO_TIME = {k: v for k, v in RIDE.items() if k != "datetime"}
PUBLISHED = datetime(2021, 2, 3, 13, 30, tzinfo=UTC)
COURSE_EVENT = json.dumps(
    {"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}, "ride_id": 123}
).encode()


def test_ride_with_offset_keeps_its_instant():
    ride = decode_ride(ride_message(datetime="2021-07-01T16:00:00+00:00"))

    assert ride.pickup_datetime == datetime(2021, 7, 1, 16, 0, tzinfo=UTC)


def test_ride_without_offset_is_new_york_time():
    ride = decode_ride(ride_message(datetime="2021-07-01T12:00:00"))

    assert ride.pickup_datetime == datetime(2021, 7, 1, 12, 0, tzinfo=NYC)


def test_an_encoded_ride_decodes_to_the_same_ride():
    pickup = datetime(2021, 2, 3, 8, 30, tzinfo=NYC)

    ride = decode_ride(encode_ride("r9", 74, 75, 2.5, pickup))

    assert (ride.ride_id, ride.pickup_zone, ride.dropoff_zone) == ("r9", 74, 75)
    assert (ride.trip_distance, ride.pickup_datetime) == (2.5, pickup)


def test_ride_problems_are_all_named():
    with pytest.raises(InvalidMessage) as err:
        decode_ride(ride_message(PULocationID=True, trip_distance=float("inf")))

    assert err.value.reason == "invalid-ride"
    assert "PULocationID" in err.value.detail and "trip_distance" in err.value.detail


@pytest.mark.parametrize("data", [b"\xff", b"[1, 2", b"[" * 100_000])
def test_data_that_is_not_json_is_said_so(data):
    with pytest.raises(InvalidMessage) as err:
        decode_ride(data)

    assert err.value.reason == "data-not-json"


def test_a_ride_without_features_is_invalid():
    with pytest.raises(InvalidMessage) as err:
        decode_ride(b'{"ride_id": "r1", "trip": {"PULocationID": 130}}')

    assert err.value.reason == "invalid-ride"


def test_result_message_has_the_contract_fields():
    assert (
        encode_result("r1", 7.5, "v")
        == b'{"ride_id": "r1", "duration_final": 7.5, "model_version": "v"}'
    )


def test_an_encoded_result_decodes_to_the_same_result():
    result = decode_result(encode_result("r1", 7.5, "ride-duration/3"))

    assert (result.ride_id, result.duration_final, result.model_version) == (
        "r1",
        7.5,
        "ride-duration/3",
    )


@pytest.mark.parametrize(
    "data",
    [b"[]", b"{}", b'{"ride_id": "r1", "duration_final": "7", "model_version": "v"}', b"\xff"],
)
def test_what_is_not_a_result_is_refused(data):
    with pytest.raises(ValueError):
        decode_result(data)


def test_the_course_event_is_a_ride_with_an_integer_id():
    ride = decode_ride(COURSE_EVENT, PUBLISHED)

    assert (ride.ride_id, ride.result_ride_id) == ("123", 123)
    assert (ride.pickup_zone, ride.dropoff_zone, ride.trip_distance) == (130, 205, 3.66)


def test_a_ride_without_datetime_was_picked_up_when_published():
    ride = decode_ride(json.dumps({"ride_id": "r1", "features": RIDE_NO_TIME}).encode(), PUBLISHED)

    assert ride.pickup_datetime == PUBLISHED


def test_a_ride_with_datetime_keeps_it_whenever_published():
    ride = decode_ride(ride_message(datetime="2021-07-01T12:00:00"), PUBLISHED)

    assert ride.pickup_datetime == datetime(2021, 7, 1, 12, 0, tzinfo=NYC)


def test_without_datetime_or_publish_time_the_ride_is_invalid():
    with pytest.raises(InvalidMessage, match="datetime"):
        decode_ride(json.dumps({"ride_id": "r1", "features": RIDE_NO_TIME}).encode())


def test_a_string_ride_id_is_returned_as_the_same_string():
    ride = decode_ride(ride_message("r9"))

    assert (ride.ride_id, ride.result_ride_id) == ("r9", "r9")


@pytest.mark.parametrize("ride_id", [True, 1.5, None, "", "x" * 129, [1]])
def test_what_is_not_a_ride_id_is_named(ride_id):
    data = json.dumps({"ride_id": ride_id, "ride": RIDE_NO_TIME}).encode()

    with pytest.raises(InvalidMessage, match="ride_id"):
        decode_ride(data, PUBLISHED)


def test_result_of_an_integer_ride_id_carries_the_integer():
    assert json.loads(encode_result(123, 7.5, "v"))["ride_id"] == 123
