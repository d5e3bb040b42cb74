"""backend_service.rides: what a ride body must hold, and its time in New York."""

from datetime import UTC, datetime

import pytest

from backend_service.rides import InvalidRide, parse_ride

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
