"""predictor_service.config: how push tokens are checked (PUSH_AUTH_MODE and its companions)."""

import pytest

from predictor_service.config import Config
from ride_stream.settings import ConfigError

BASE = {"PROJECT_ID": "p", "MODEL_URI": "/models/ride-duration"}
AUDIENCE = "https://ride-predictor-abc123-uc.a.run.app"
INVOKER = "ride-push-invoker@p.iam.gserviceaccount.com"


def test_mode_defaults_to_signature_when_an_audience_is_set() -> None:
    config = Config.from_env(BASE | {"PUSH_AUDIENCE": AUDIENCE})

    assert config.push_auth_mode == "signature"


def test_cloud_run_iam_mode_is_read_with_its_audience_and_account() -> None:
    env = {"PUSH_AUTH_MODE": "cloud-run-iam", "PUSH_AUDIENCE": AUDIENCE}

    config = Config.from_env(BASE | env | {"PUSH_SERVICE_ACCOUNT": INVOKER})

    assert (config.push_auth_mode, config.push_audience, config.push_service_account) == (
        "cloud-run-iam",
        AUDIENCE,
        INVOKER,
    )


def test_cloud_run_iam_mode_without_the_push_account_is_refused() -> None:
    with pytest.raises(ConfigError, match="PUSH_SERVICE_ACCOUNT"):
        Config.from_env(BASE | {"PUSH_AUTH_MODE": "cloud-run-iam", "PUSH_AUDIENCE": AUDIENCE})


@pytest.mark.parametrize("mode", ["signature", "cloud-run-iam"])
def test_a_mode_without_an_audience_is_refused(mode: str) -> None:
    env = BASE | {"PUSH_AUTH_MODE": mode, "PUSH_SERVICE_ACCOUNT": INVOKER}

    with pytest.raises(ConfigError, match="needs PUSH_AUDIENCE"):
        Config.from_env(env)


def test_an_unknown_mode_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_env(BASE | {"PUSH_AUTH_MODE": "iam", "PUSH_AUDIENCE": AUDIENCE})

    assert "PUSH_AUTH_MODE must be one of cloud-run-iam, signature, got 'iam'" in str(err.value)


def test_push_auth_problems_are_listed_with_the_others() -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_env({"PUSH_AUTH_MODE": "cloud-run-iam", "LOG_LEVEL": "loud"})

    message = str(err.value)
    for problem in ("PROJECT_ID", "MODEL_URI", "PUSH_AUDIENCE", "PUSH_SERVICE_ACCOUNT"):
        assert problem in message
    assert "LOG_LEVEL" in message


def test_config_takes_run_id_with_a_tracking_uri():
    config = Config.from_env(
        {"PROJECT_ID": "p", "RUN_ID": "abc", "MLFLOW_TRACKING_URI": "http://x"}
    )

    assert config.model_uri == "runs:/abc/model"


def test_config_lists_every_problem():
    with pytest.raises(ConfigError) as err:
        Config.from_env({"RUN_ID": "abc", "PUBLISH_TIMEOUT_S": "0", "LOG_LEVEL": "loud"})

    message = str(err.value)
    for problem in ("PROJECT_ID", "MLFLOW_TRACKING_URI", "PUBLISH_TIMEOUT_S", "LOG_LEVEL"):
        assert problem in message


def test_the_results_topic_is_read_under_its_name_and_its_former_one():
    base = {"PROJECT_ID": "p", "MODEL_URI": "/models/m"}

    assert Config.from_env(base | {"RESULTS_TOPIC": "r1"}).results_topic == "r1"
    assert Config.from_env(base | {"BACKEND_PULL_STREAM": "r2"}).results_topic == "r2"


@pytest.mark.parametrize("kind", ["course", "ride", "features"])
def test_model_input_names_what_a_model_without_signature_takes(kind):
    assert Config.from_env(BASE | {"MODEL_INPUT": kind}).model_input == kind


def test_model_input_is_unset_by_default():
    assert Config.from_env(BASE).model_input is None


def test_an_unknown_model_input_is_refused_naming_the_kinds():
    with pytest.raises(ConfigError, match="MODEL_INPUT must be one of course, ride, features"):
        Config.from_env(BASE | {"MODEL_INPUT": "dicts"})


def test_model_version_is_the_version_the_revision_was_made_with():
    pinned = Config.from_env(BASE | {"MODEL_VERSION": " ride-duration/7 "})

    assert pinned.model_version == "ride-duration/7"
    # empty, as ship_model.sh sets it for a folder whose MLmodel names the version: unset
    assert Config.from_env(BASE | {"MODEL_VERSION": ""}).model_version is None
