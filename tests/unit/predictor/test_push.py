"""The push endpoint: every delivery ends acked with a result or a dead letter, or redelivered."""

import base64
import json
from datetime import UTC, datetime

import pytest

from devstack.pubsub import push_envelope
from tests.kit.fakes import FakeBooster
from tests.kit.rides import ride_message


def test_valid_ride_publishes_its_result_then_acks(client, publisher):
    response = client.post("/", data=push_envelope(ride_message("r1"), {"reply_to": "b1"}))

    assert response.status_code == 204
    result, attributes = publisher.results[0]
    assert result == {"ride_id": "r1", "duration_final": 7.5, "model_version": "ride-duration/3"}
    assert attributes == {"ride_id": "r1", "reply_to": "b1"}
    assert publisher.dead_letters == []


def test_publish_failure_answers_503_for_redelivery(client, publisher):
    publisher.fail = True

    response = client.post("/", data=push_envelope(ride_message()))

    assert response.status_code == 503


def test_dead_letter_failure_answers_503_for_redelivery(client, publisher):
    publisher.fail = True

    response = client.post("/", data=b"not json")

    assert response.status_code == 503


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "body-not-json"),
        (b"[1, 2]", "envelope-without-message"),
        (json.dumps({"subscription": "s"}).encode(), "envelope-without-message"),
        (json.dumps({"message": {"data": 5}}).encode(), "envelope-without-message"),
        (json.dumps({"message": {"data": "***"}}).encode(), "data-not-base64"),
        (push_envelope(b"\x00\xff binary"), "data-not-json"),
        (push_envelope(b'{"ride_id": "r1"}'), "invalid-ride"),
        (push_envelope(ride_message(PULocationID=0)), "invalid-ride"),
        (push_envelope(ride_message(DOLocationID="75")), "invalid-ride"),
        (push_envelope(ride_message(trip_distance=-2)), "invalid-ride"),
        (push_envelope(ride_message(trip_distance=None)), "invalid-ride"),
        (push_envelope(ride_message(datetime="yesterday")), "invalid-ride"),
        (push_envelope(ride_message(ride_id="")), "invalid-ride"),
    ],
)
def test_bad_input_is_dead_lettered_with_its_reason_and_acked(client, publisher, body, reason):
    response = client.post("/", data=body)

    assert response.status_code == 204
    assert publisher.results == []
    [(payload, attributes)] = publisher.dead_letters
    assert attributes["reason"] == reason
    assert attributes["error"]
    assert payload


def test_dead_letter_keeps_the_original_data_and_attributes(client, publisher):
    data = ride_message(PULocationID=999)

    client.post("/", data=push_envelope(data, {"ride_id": "r1", "reply_to": "b1"}))

    [(payload, attributes)] = publisher.dead_letters
    assert payload == data
    assert attributes["ride_id"] == "r1" and attributes["reply_to"] == "b1"
    assert attributes["source_message_id"] == "1"
    assert "PULocationID" in attributes["error"]


def test_worker_keeps_serving_after_bad_input(client, publisher):
    client.post("/", data=b"garbage")

    response = client.post("/", data=push_envelope(ride_message("r2")))

    assert response.status_code == 204
    assert publisher.results[0][0]["ride_id"] == "r2"


def test_redelivery_gives_the_same_answer(client, publisher):
    envelope = push_envelope(ride_message("r3"), {"reply_to": "b1"})

    client.post("/", data=envelope)
    client.post("/", data=envelope)

    assert publisher.results[0] == publisher.results[1]


def test_envelope_over_the_limit_is_refused(client, publisher):
    big = base64.b64encode(b"x" * 100_000).decode()

    response = client.post("/", data=json.dumps({"message": {"data": big}}))

    assert response.status_code == 413
    assert publisher.results == []


def test_readyz_names_the_model_version(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json()["model_version"] == "ride-duration/3"


def test_healthz_is_ok(client):
    assert client.get("/healthz").status_code == 200


class FakeVerifier:
    """Accepts only the header `Bearer good`, as the OIDC verifier would a valid token."""

    def verify(self, authorization: str | None) -> None:
        from predictor_service.push_auth import MissingToken, WrongSender

        if authorization is None:
            raise MissingToken("no Authorization header")
        if authorization != "Bearer good":
            raise WrongSender("token from another service account")


@pytest.fixture
def guarded_client(publisher):
    from predictor_service import create_app
    from predictor_service.config import Config
    from predictor_service.model import LoadedModel

    config = Config(project_id="test-project", model_uri="unused", push_audience="https://p")
    model = LoadedModel(version="v", booster=FakeBooster())
    app = create_app(config, model=model, publisher=publisher, push_verifier=FakeVerifier())
    return app.test_client()


def test_push_without_token_is_401_when_an_audience_is_configured(guarded_client, publisher):
    response = guarded_client.post("/", data=push_envelope(ride_message()))

    assert response.status_code == 401
    assert publisher.results == [] and publisher.dead_letters == []


def test_push_from_another_sender_is_403(guarded_client, publisher):
    response = guarded_client.post(
        "/", data=push_envelope(ride_message()), headers={"Authorization": "Bearer other"}
    )

    assert response.status_code == 403
    assert publisher.results == []


def test_push_with_a_valid_token_is_processed(guarded_client, publisher):
    response = guarded_client.post(
        "/", data=push_envelope(ride_message()), headers={"Authorization": "Bearer good"}
    )

    assert response.status_code == 204
    assert len(publisher.results) == 1


def test_an_unknown_path_is_404(client):
    assert client.get("/predict").status_code == 404


def test_the_push_path_answers_only_post(client):
    response = client.get("/")

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


COURSE_EVENT = {"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66},
                "ride_id": 123}  # fmt: skip


def test_the_course_event_is_answered_with_its_ride_id_and_no_reply_to(client, publisher):
    response = client.post("/", data=push_envelope(json.dumps(COURSE_EVENT).encode()))

    assert response.status_code == 204
    result, attributes = publisher.results[0]
    assert result == {"ride_id": 123, "duration_final": 10.98, "model_version": "ride-duration/3"}
    assert attributes == {"ride_id": "123"}


def test_a_ride_without_datetime_is_predicted_at_its_publish_time(publisher):
    seen: list = []
    client = app_with(ModelSpy(seen), publisher)
    envelope = json.loads(push_envelope(json.dumps(COURSE_EVENT).encode()))
    envelope["message"]["publishTime"] = "2021-02-03T13:30:00Z"

    response = client.post("/", data=json.dumps(envelope))

    assert response.status_code == 204
    assert seen == [(130, 205, 3.66, datetime(2021, 2, 3, 13, 30, tzinfo=UTC))]


class ModelSpy:
    """Records what the push route asks the model."""

    version = "spy/1"

    def __init__(self, seen: list) -> None:
        self.seen = seen

    def duration(self, *ride: object) -> float:
        self.seen.append(ride)
        return 1.0


def app_with(model: object, publisher: object):  # type: ignore[no-untyped-def]
    from predictor_service import create_app
    from predictor_service.config import Config

    config = Config(project_id="test-project", model_uri="unused")
    return create_app(config, model=model, publisher=publisher).test_client()  # type: ignore[arg-type]


def test_a_traced_predictor_continues_the_rides_trace_on_its_result(publisher):
    from predictor_service import create_app
    from predictor_service.config import Config
    from predictor_service.model import LoadedModel
    from ride_stream.tracing import Tracing

    config = Config(project_id="test-project", model_uri="unused")
    model = LoadedModel(version="ride-duration/3", booster=FakeBooster())
    tracing = Tracing("predictor", 0.1)
    client = create_app(config, model=model, publisher=publisher, tracing=tracing).test_client()  # type: ignore[arg-type]
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    ride = {"googclient_traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "reply_to": "b1"}

    client.post("/", data=push_envelope(ride_message("r9"), ride))

    _, attributes = publisher.results[0]
    version, trace, span, flags = attributes.pop("googclient_traceparent").split("-")
    assert (version, trace, flags) == ("00", trace_id, "01")
    assert attributes == {"ride_id": "r9", "reply_to": "b1"}
