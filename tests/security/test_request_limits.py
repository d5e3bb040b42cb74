"""Hostile request bodies: size limits at the services' real defaults, and JSON bombs."""

import io
import json

import pytest

from backend_service import create_app as create_backend
from backend_service.config import Config as BackendConfig
from devstack.pubsub import push_envelope
from predictor_service import create_app as create_predictor
from predictor_service.config import PUBSUB_MAX_ENVELOPE_BYTES
from predictor_service.config import Config as PredictorConfig
from predictor_service.model import LoadedModel
from tests.kit.fakes import FakeBooster, FakeListener, FakeResultPublisher, FakeRidePublisher
from tests.kit.rides import RIDE

# Pub/Sub's own limit on a message's data: https://cloud.google.com/pubsub/quotas#resource_limits
PUBSUB_MAX_MESSAGE_BYTES = 10 * 1000 * 1000
NESTED = b"[" * 100_000


@pytest.fixture
def backend():
    config = BackendConfig(project_id="limits-project", result_timeout_s=0.01, ride_store="memory")
    app = create_backend(config, publisher=FakeRidePublisher(), listener=FakeListener())  # type: ignore[arg-type]
    return app.test_client()


@pytest.fixture
def dead_letters():
    return FakeResultPublisher()


@pytest.fixture
def predictor(dead_letters):
    config = PredictorConfig(project_id="limits-project", model_uri="unused")
    model = LoadedModel(version="limits/1", booster=FakeBooster())
    return create_predictor(config, model=model, publisher=dead_letters).test_client()  # type: ignore[arg-type]


def chunked(client, path: str, body: bytes):
    """POST `body` without a Content-Length, as gunicorn hands on a chunked request."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_backend_refuses_a_body_over_its_default_limit_in_the_error_shape(backend):
    body = json.dumps(RIDE | {"padding": "x" * 20_000}).encode()

    response = backend.post("/rides", data=body, content_type="application/json")

    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == 413


def test_backend_refuses_a_chunked_body_over_its_limit(backend):
    body = json.dumps(RIDE | {"padding": "x" * 100_000}).encode()

    response = chunked(backend, "/estimate", body)

    assert response.status_code == 413


def test_backend_answers_json_nested_past_the_decoder_depth_with_400(backend):
    response = backend.post("/rides", data=b"[" * 15_000, content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == 400


def test_predictor_refuses_an_envelope_over_the_pubsub_limit(predictor, dead_letters):
    response = predictor.post("/", data=b"{" + b" " * PUBSUB_MAX_ENVELOPE_BYTES + b"}")

    assert response.status_code == 413
    assert dead_letters.dead_letters == []


def test_predictor_refuses_a_chunked_envelope_over_the_pubsub_limit(predictor):
    body = b"{" + b" " * PUBSUB_MAX_ENVELOPE_BYTES + b"}"

    response = chunked(predictor, "/", body)

    assert response.status_code == 413


def test_predictor_takes_the_largest_message_pubsub_can_push(predictor, dead_letters):
    response = predictor.post("/", data=push_envelope(b"x" * PUBSUB_MAX_MESSAGE_BYTES))

    assert response.status_code == 204
    assert dead_letters.dead_letters[0][1]["reason"] == "data-not-json"


def test_predictor_dead_letters_data_nested_past_the_decoder_depth(predictor, dead_letters):
    response = predictor.post("/", data=push_envelope(NESTED))

    assert response.status_code == 204
    assert dead_letters.dead_letters[0][1]["reason"] == "data-not-json"


def test_predictor_dead_letters_an_envelope_nested_past_the_decoder_depth(predictor, dead_letters):
    response = predictor.post("/", data=NESTED)

    assert response.status_code == 204
    assert dead_letters.dead_letters[0][1]["reason"] == "body-not-json"
