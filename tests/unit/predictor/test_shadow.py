"""Shadow pushes: a candidate's answers and failures go to the shadow topic, never to riders."""

import pytest

from devstack.pubsub import push_envelope
from predictor_service import create_app
from predictor_service.config import Config
from predictor_service.model import LoadedModel
from predictor_service.shadow import ShadowSettings
from ride_stream.settings import ConfigError
from tests.kit.fakes import FakeBooster, FakeResultPublisher
from tests.kit.rides import ride_message

SHADOW_SUB = "projects/test-project/subscriptions/ride-data-shadow-sub"
RIDERS_SUB = "projects/test-project/subscriptions/ride-data-push-sub"
BASE = {"PROJECT_ID": "p", "MODEL_URI": "/models/ride-duration"}


@pytest.fixture
def shadow() -> FakeResultPublisher:
    publisher = FakeResultPublisher()
    publisher.results_topic_name = "ride-duration-shadow"
    return publisher


@pytest.fixture
def app_client(publisher: FakeResultPublisher, shadow: FakeResultPublisher):
    config = Config(
        project_id="test-project",
        model_uri="unused",
        shadow=ShadowSettings("ride-data-shadow-sub", "ride-duration-shadow"),
    )
    model = LoadedModel(version="ride-duration/4", booster=FakeBooster())
    app = create_app(config, model=model, publisher=publisher, shadow_publisher=shadow)  # type: ignore[arg-type]
    return app.test_client()


def test_a_shadow_push_is_answered_on_the_shadow_topic_without_its_reply_to(
    app_client, publisher, shadow
):
    body = push_envelope(ride_message("r1"), {"reply_to": "b1"}, subscription=SHADOW_SUB)

    assert app_client.post("/", data=body).status_code == 204

    [(result, attributes)] = shadow.results
    assert result == {"ride_id": "r1", "duration_final": 7.5, "model_version": "ride-duration/4"}
    assert attributes == {"ride_id": "r1"}
    assert publisher.results == [] and publisher.dead_letters == []


def test_a_riders_push_to_the_same_revision_is_answered_to_the_rider(app_client, publisher, shadow):
    body = push_envelope(ride_message("r1"), {"reply_to": "b1"}, subscription=RIDERS_SUB)

    assert app_client.post("/", data=body).status_code == 204

    [(result, attributes)] = publisher.results
    assert result["model_version"] == "ride-duration/4" and attributes["reply_to"] == "b1"
    assert shadow.results == [] and shadow.dead_letters == []


def test_a_bad_shadow_ride_fails_on_the_shadow_topic_not_the_riders_dead_letters(
    app_client, publisher, shadow
):
    body = push_envelope(ride_message("r1", trip_distance=-2), subscription=SHADOW_SUB)

    assert app_client.post("/", data=body).status_code == 204

    [(_, attributes)] = shadow.dead_letters
    assert attributes["reason"] == "invalid-ride"
    assert publisher.dead_letters == [] and publisher.results == []


def test_a_shadow_publish_failure_asks_its_own_subscription_to_redeliver(
    app_client, publisher, shadow
):
    shadow.fail = True

    body = push_envelope(ride_message("r1"), subscription=SHADOW_SUB)

    assert app_client.post("/", data=body).status_code == 503
    assert publisher.results == [] and publisher.dead_letters == []


def test_shadow_settings_are_read_as_short_names() -> None:
    env = {
        "SHADOW_SUBSCRIPTION": SHADOW_SUB,
        "SHADOW_RESULTS_TOPIC": "projects/p/topics/ride-duration-shadow",
    }

    config = Config.from_env(BASE | env)

    assert config.shadow == ShadowSettings("ride-data-shadow-sub", "ride-duration-shadow")


def test_without_shadow_settings_every_push_is_a_riders() -> None:
    assert Config.from_env(BASE).shadow is None


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"SHADOW_SUBSCRIPTION": "s"}, "set together or not at all"),
        ({"SHADOW_RESULTS_TOPIC": "t"}, "set together or not at all"),
        (
            {"SHADOW_SUBSCRIPTION": "s", "SHADOW_RESULTS_TOPIC": "ride-duration-pull"},
            "must not be a topic riders read",
        ),
        (
            {"SHADOW_SUBSCRIPTION": "s", "SHADOW_RESULTS_TOPIC": "ride-data-dead-letter"},
            "must not be a topic riders read",
        ),
        (
            {"SHADOW_SUBSCRIPTION": "s", "SHADOW_RESULTS_TOPIC": "x", "RESULTS_TOPIC": "x"},
            "must not be a topic riders read",
        ),
    ],
)
def test_shadow_settings_that_could_reach_a_rider_are_refused(env, problem) -> None:
    with pytest.raises(ConfigError, match=problem):
        Config.from_env(BASE | env)
