"""The backend's HTTP API against fake stream parts."""

import pytest

from backend_service import create_app
from backend_service.config import Config
from backend_service.ride_store import LocalRides, RideRecord, StoreUnavailable
from tests.kit.rides import RIDE


def test_estimate_answers_with_the_coarse_duration(client, publisher):
    response = client.post("/estimate", json=RIDE)

    assert response.status_code == 200
    assert 1 <= response.get_json()["duration_coarse"] <= 60
    assert publisher.published == []


def test_estimate_without_datetime_uses_now(client):
    ride = {k: v for k, v in RIDE.items() if k != "datetime"}

    assert client.post("/estimate", json=ride).status_code == 200


def test_confirmed_ride_returns_the_final_duration(client, publisher):
    response = client.post("/rides", json=RIDE)

    body = response.get_json()
    assert response.status_code == 200
    assert body["duration_final"] == 7.5
    assert body["model_version"] == "ride-duration/7"
    assert (
        body["duration_coarse"] == client.post("/estimate", json=RIDE).get_json()["duration_coarse"]
    )
    assert publisher.published[0]["reply_to"] == "backend-under-test"
    assert publisher.published[0]["message"]["ride_id"] == body["ride_id"]


def test_published_ride_carries_the_features_and_a_filled_datetime(client, publisher):
    client.post("/rides", json={"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1.5})

    features = publisher.published[0]["message"]["features"]
    assert features["PULocationID"] == 1 and features["DOLocationID"] == 2
    assert features["trip_distance"] == 1.5
    assert features["datetime"].endswith(("-05:00", "-04:00"))  # New York time, with offset


def test_slow_result_answers_pending(client, publisher):
    publisher.respond = lambda ride_id, ride: None

    response = client.post("/rides", json={**RIDE, "ride_id": "slow-1"})

    assert response.status_code == 202
    assert response.get_json() == {
        "ride_id": "slow-1",
        "duration_coarse": response.get_json()["duration_coarse"],
        "status": "pending",
    }


def test_pending_ride_can_be_looked_up_once_its_result_arrives(app, client, publisher):
    publisher.respond = lambda ride_id, ride: None
    client.post("/rides", json={**RIDE, "ride_id": "late-1"})

    app.extensions["backend"].rides.complete("late-1", 9.9, "ride-duration/7")

    assert client.get("/rides/late-1").get_json()["duration_final"] == 9.9


def test_stream_down_answers_503_with_the_coarse_duration(client, publisher):
    publisher.fail = True

    response = client.post("/rides", json={**RIDE, "ride_id": "down-1"})

    body = response.get_json()
    assert response.status_code == 503
    assert body["ride_id"] == "down-1"
    assert body["duration_coarse"] > 0
    assert body["error"]["code"] == 503


def test_same_ride_id_is_answered_without_publishing_again(client, publisher):
    first = client.post("/rides", json={**RIDE, "ride_id": "idem-1"}).get_json()

    second = client.post("/rides", json={**RIDE, "ride_id": "idem-1"}).get_json()

    assert second == first
    assert len(publisher.published) == 1


def test_ride_id_reused_for_another_ride_is_a_conflict(client):
    client.post("/rides", json={**RIDE, "ride_id": "idem-2"})

    response = client.post("/rides", json={**RIDE, "ride_id": "idem-2", "trip_distance": 9.0})

    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == 409


def test_unknown_ride_is_404(client):
    response = client.get("/rides/never-seen")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404


def test_malformed_json_is_400(client, publisher):
    response = client.post("/rides", data="{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == 400
    assert publisher.published == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"PULocationID": 0}, "PULocationID"),
        ({"DOLocationID": 266}, "DOLocationID"),
        ({"PULocationID": "74"}, "PULocationID"),
        ({"trip_distance": 0}, "trip_distance"),
        ({"trip_distance": 5000}, "trip_distance"),
        ({"trip_distance": "far"}, "trip_distance"),
        ({"datetime": "yesterday"}, "datetime"),
        ({"ride_id": "has spaces"}, "ride_id"),
    ],
)
def test_bad_field_is_422_naming_it(client, publisher, change, field):
    response = client.post("/rides", json={**RIDE, **change})

    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == [field]
    assert publisher.published == []


def test_every_bad_field_is_named(client):
    response = client.post("/estimate", json={"trip_distance": -1})

    fields = response.get_json()["error"]["fields"]
    assert set(fields) == {"PULocationID", "DOLocationID", "trip_distance"}


def test_body_over_the_limit_is_413(client, publisher):
    response = client.post("/rides", json={**RIDE, "padding": "x" * 4096})

    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == 413
    assert publisher.published == []


def test_unknown_route_uses_the_error_shape(client):
    response = client.get("/nowhere")

    assert response.status_code == 404
    assert set(response.get_json()) == {"error"}


def test_healthz_is_ok(client):
    assert client.get("/healthz").status_code == 200


def test_readyz_reports_the_listener_and_publisher(client, listener, publisher):
    assert client.get("/readyz").status_code == 200

    listener.running = False

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"listener": False, "publisher": True, "store": True}


def test_closing_the_runtime_closes_the_listener(app, listener):
    app.extensions["backend"].close()

    assert listener.closed


def test_rides_still_waiting_are_published_again_when_the_listener_resubscribes(
    app, client, publisher, listener
):
    publisher.respond = lambda ride_id, ride: None  # no result comes: the ride stays pending
    assert client.post("/rides", json={**RIDE, "ride_id": "waiting"}).status_code == 202
    assert client.post("/rides", json={**RIDE, "ride_id": "done"}).status_code == 202
    app.extensions["backend"].rides.complete("done", 9.0, "v1")

    listener.on_resubscribed()

    again = publisher.published[2:]
    assert [p["ride_id"] for p in again] == ["waiting"]
    assert again[0]["message"] == publisher.published[0]["message"]
    assert again[0]["reply_to"] == listener.reply_to


class DownStore(LocalRides):
    """A ride store that cannot be reached."""

    def claim(self, *args):
        raise StoreUnavailable("create: ServiceUnavailable: connection refused")

    def get(self, ride_id):
        raise StoreUnavailable("get: ServiceUnavailable: connection refused")

    def problem(self):
        return "ride store unavailable: get: ServiceUnavailable: connection refused"


@pytest.fixture
def down_client(publisher, listener):
    config = Config(project_id="p", result_timeout_s=0.2, ride_store="memory")
    app = create_app(config, publisher=publisher, listener=listener, rides=DownStore())
    return app.test_client()


def test_a_store_that_is_down_answers_503_with_the_coarse_duration_and_publishes_nothing(
    down_client, publisher
):
    response = down_client.post("/rides", json={**RIDE, "ride_id": "r-down"})

    body = response.get_json()
    assert response.status_code == 503
    assert body["ride_id"] == "r-down" and body["duration_coarse"] > 0
    assert "ride store is unavailable" in body["error"]["message"]
    assert publisher.published == []


def test_a_lookup_while_the_store_is_down_is_503_not_404(down_client):
    response = down_client.get("/rides/r-down")

    assert response.status_code == 503
    assert "ServiceUnavailable" in response.get_json()["error"]["message"]


def test_readyz_fails_and_says_why_while_the_store_is_down(down_client):
    response = down_client.get("/readyz")

    assert response.status_code == 503
    assert response.get_json()["checks"]["store"] is False
    assert "ride store unavailable" in response.get_json()["reason"]


def test_a_ride_taken_elsewhere_is_followed_not_published_again(
    app, client, publisher, monkeypatch
):
    rt = app.extensions["backend"]
    done = RideRecord("elsewhere", b"fp", 5.0, duration_final=8.25, model_version="v9")
    monkeypatch.setattr(rt.rides, "claim", lambda *a: (RideRecord("elsewhere", b"fp", 5.0), False))
    monkeypatch.setattr(rt.rides, "follow", lambda record, timeout_s: done)

    response = client.post("/rides", json={**RIDE, "ride_id": "elsewhere"})

    assert response.status_code == 200
    assert response.get_json()["duration_final"] == 8.25
    assert publisher.published == []


def test_a_traced_ride_carries_the_callers_trace_in_googclient_traceparent(publisher):
    from backend_service.config import Config as BackendConfig
    from ride_stream.tracing import Tracing
    from tests.kit.fakes import FakeListener

    config = BackendConfig(project_id="test-project", result_timeout_s=0.2, ride_store="memory")
    tracing = Tracing("backend", 0.1)
    app = create_app(config, publisher=publisher, listener=FakeListener(), tracing=tracing)  # type: ignore[arg-type]
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

    response = app.test_client().post(
        "/rides", json=RIDE, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-00"}
    )

    assert response.status_code == 202  # nothing answers the fake stream
    (published,) = publisher.published
    version, trace, span, flags = published["trace"]["googclient_traceparent"].split("-")
    assert (version, trace, flags) == ("00", trace_id, "00")  # the caller did not sample
    assert span != "00f067aa0ba902b7"  # the publish's own span, a child of the request's


def test_an_untraced_backend_adds_no_trace_attribute(client, publisher):
    client.post("/rides", json=RIDE)

    assert publisher.published[0]["trace"] == {}
