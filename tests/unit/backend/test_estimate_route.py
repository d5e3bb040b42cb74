"""POST /estimate: one plain WSGI handler, whose answers and errors match the Flask routes'."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from backend_service.routes import EstimateRoute
from ride_stream.logs import TraceContext
from tests.kit.strategies import json_values, miles, pickups, zones

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
    assert isinstance(app.wsgi_app, TraceContext)
    estimate = app.wsgi_app.app
    assert isinstance(estimate, EstimateRoute)
    estimate.fallback = CountingApp(estimate.fallback)
    return estimate


def answer(wsgi_app, path: str, body: bytes, content_type: str):
    response = Client(wsgi_app).post(path, data=body, content_type=content_type)
    return response.status_code, response.headers.get("Content-Type"), response.get_data()


# One app serves every example: the route keeps no state between requests.
SHARED_APP = [HealthCheck.function_scoped_fixture]


@settings(max_examples=300, suppress_health_check=SHARED_APP)
@given(body=bodies, content_type=content_types)
def test_every_body_gets_the_answer_the_flask_routes_give_it(app, body, content_type):
    estimate = answer(app, "/estimate", body, content_type)
    # POST /rides reads and checks the same body through Flask, and its stream answers at once.
    confirm = answer(app, "/rides", body, content_type)

    if estimate[0] == 200:
        assert confirm[0] == 200
        assert (
            json.loads(estimate[2])["duration_coarse"] == json.loads(confirm[2])["duration_coarse"]
        )
    else:
        assert estimate == confirm


@settings(suppress_health_check=SHARED_APP)
@given(ride=valid_rides)
def test_a_valid_ride_is_answered_without_flask(route, ride):
    status, content_type, body = answer(
        route, "/estimate", json.dumps(ride).encode(), "application/json"
    )

    assert (status, content_type) == (200, "application/json")
    assert json.loads(body)["duration_coarse"] > 0
    assert route.fallback.calls == 0


def test_an_invalid_ride_is_refused_with_its_fields_without_flask(route):
    ride = {"PULocationID": 0, "DOLocationID": 75, "trip_distance": 2.0}

    status, _, body = answer(route, "/estimate", json.dumps(ride).encode(), "application/json")

    assert status == 422
    assert list(json.loads(body)["error"]["fields"]) == ["PULocationID"]
    assert route.fallback.calls == 0


def test_a_body_over_the_limit_is_refused_unread(route):
    ride = {"PULocationID": 43, "DOLocationID": 75, "trip_distance": 2.0, "pad": "x" * 4096}

    status, _, body = answer(route, "/estimate", json.dumps(ride).encode(), "application/json")

    assert status == 413
    assert json.loads(body)["error"]["code"] == 413


def test_only_post_is_allowed(route):
    response = Client(route).get("/estimate")

    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == 405
    assert route.fallback.calls == 0


def test_other_routes_go_to_flask(route):
    assert Client(route).get("/healthz").status_code == 200
    assert route.fallback.calls == 1
