"""POST /estimate's plain WSGI handler answers exactly as the Flask route behind it would."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from backend_service.routes import EstimateRoute
from tests.security.test_ride_validation_properties import json_values, pickups, zones

miles = st.floats(min_value=0.0, max_value=200.0, exclude_min=True, allow_nan=False)
# Valid rides always carry their datetime here: a ride without one is estimated for "now",
# which could move to the next hour between the two answers compared.
valid_rides = st.fixed_dictionaries(
    {
        "PULocationID": zones,
        "DOLocationID": zones,
        "trip_distance": miles,
        "datetime": pickups.map(lambda when: when.isoformat()),
    }
)
bodies = (
    valid_rides.map(lambda ride: json.dumps(ride).encode())
    | json_values.map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=64)
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "application/ride+json", "text/plain"]
)


class CountingApp:
    """The Flask app's own WSGI callable, counting the requests that reach it."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.wsgi_app(environ, start_response)


@pytest.fixture
def route(app) -> EstimateRoute:
    assert isinstance(app.wsgi_app, EstimateRoute)
    app.wsgi_app.fallback = CountingApp(app.wsgi_app.fallback)
    return app.wsgi_app


def answer(wsgi_app, body: bytes, content_type: str):
    response = Client(wsgi_app).post("/estimate", data=body, content_type=content_type)
    return response.status_code, response.headers.get("Content-Type"), response.get_data()


# One app serves every example: the route keeps no state between requests.
SHARED_APP = [HealthCheck.function_scoped_fixture]


@settings(max_examples=300, suppress_health_check=SHARED_APP)
@given(body=bodies, content_type=content_types)
def test_every_body_gets_the_flask_routes_answer(app, body, content_type):
    route = app.wsgi_app

    assert answer(route, body, content_type) == answer(route.fallback, body, content_type)


@settings(suppress_health_check=SHARED_APP)
@given(ride=valid_rides)
def test_a_valid_ride_is_answered_without_flask(route, ride):
    before = route.fallback.calls

    status, content_type, body = answer(route, json.dumps(ride).encode(), "application/json")

    assert (status, content_type) == (200, "application/json")
    assert json.loads(body)["duration_coarse"] > 0
    assert route.fallback.calls == before


def test_an_invalid_ride_reaches_flask_with_its_body(route):
    ride = {"PULocationID": 0, "DOLocationID": 75, "trip_distance": 2.0}

    status, _, body = answer(route, json.dumps(ride).encode(), "application/json")

    assert status == 422
    assert list(json.loads(body)["error"]["fields"]) == ["PULocationID"]
    assert route.fallback.calls == 1


def test_a_body_over_the_limit_is_refused_by_flask_unread(route):
    ride = {"PULocationID": 43, "DOLocationID": 75, "trip_distance": 2.0, "pad": "x" * 4096}

    status, _, body = answer(route, json.dumps(ride).encode(), "application/json")

    assert status == 413
    assert json.loads(body)["error"]["code"] == 413
    assert route.fallback.calls == 1


def test_other_routes_go_to_flask(route):
    assert Client(route).get("/healthz").status_code == 200
    assert route.fallback.calls == 1
