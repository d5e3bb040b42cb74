"""Properties of ride validation, for any input hypothesis can think of."""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_service import create_app
from backend_service.config import Config
from backend_service.rides import InvalidRide, parse_ride
from ride_stream.messages import decode_ride
from tests.kit.fakes import FakeListener, FakeRidePublisher
from tests.kit.strategies import json_values, valid_rides

NOW = datetime(2021, 2, 3, 12, 0, tzinfo=UTC)
FIELDS = ("PULocationID", "DOLocationID", "trip_distance", "datetime", "ride_id")

# A value each field must refuse.
bad_values = {
    "PULocationID": st.integers(max_value=0) | st.integers(min_value=266) | st.floats() | st.text(),
    "DOLocationID": st.booleans() | st.none() | st.integers(min_value=266),
    "trip_distance": st.floats(max_value=0.0) | st.floats(min_value=200.01) | st.text(),
    "datetime": st.text().filter(lambda s: not _parses(s)) | st.integers(),
    "ride_id": st.text(min_size=129) | st.just("") | st.just("a b") | st.integers(),
}


def _parses(text: str) -> bool:
    try:
        return 2000 <= datetime.fromisoformat(text).year <= 2100
    except ValueError:
        return False


@given(valid_rides)
def test_every_valid_ride_is_accepted_and_the_predictor_reads_it_back(body):
    ride = parse_ride(body, NOW)
    decoded = decode_ride(ride.message(body.get("ride_id", "generated-id")))

    assert decoded.pickup_zone == body["PULocationID"]
    assert decoded.dropoff_zone == body["DOLocationID"]
    assert decoded.trip_distance == body["trip_distance"]
    assert decoded.pickup_datetime == ride.pickup_datetime


@given(json_values | valid_rides.map(lambda r: r | {"extra": [1, {"x": None}]}))
def test_any_json_is_a_ride_or_an_invalid_ride_never_a_crash(payload):
    try:
        parse_ride(payload, NOW)
    except InvalidRide as err:
        assert err.fields and all(isinstance(v, str) and v for v in err.fields.values())


@pytest.mark.parametrize("field", FIELDS)
@given(data=st.data())
def test_one_bad_field_is_named_alone(field, data):
    body = data.draw(valid_rides) | {field: data.draw(bad_values[field])}

    with pytest.raises(InvalidRide) as raised:
        parse_ride(body, NOW)

    assert set(raised.value.fields) == {field}


@pytest.fixture(scope="module")
def client():
    config = Config(project_id="props-project", result_timeout_s=0.01, ride_store="memory")
    app = create_app(config, publisher=FakeRidePublisher(), listener=FakeListener())  # type: ignore[arg-type]
    return app.test_client()


@given(body=st.binary(max_size=2048) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_gets_a_json_answer_below_500(client, body):
    for path in ("/estimate", "/rides"):
        response = client.post(path, data=body, content_type="application/json")

        assert response.status_code in {200, 202, 400, 409, 422}
        payload = response.get_json()
        if response.status_code >= 400:
            assert payload["error"]["code"] == response.status_code
