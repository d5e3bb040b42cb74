"""backend_service.config: the environment read once, every problem listed."""

import pytest

from backend_service.config import Config
from ride_stream.settings import ConfigError


def test_config_reads_the_documented_variables():
    config = Config.from_env(
        {"PROJECT_ID": "p", "RIDES_TOPIC": "in", "RESULTS_TOPIC": "out",
         "RESULT_TIMEOUT_S": "2.5", "MAX_BODY_BYTES": "1000"}
    )  # fmt: skip

    assert (config.rides_topic, config.results_topic) == ("in", "out")
    assert config.result_timeout_s == 2.5 and config.max_body_bytes == 1000


def test_the_topic_names_of_earlier_releases_still_count():
    config = Config.from_env(
        {"PROJECT_ID": "p", "BACKEND_PUSH_STREAM": "in", "BACKEND_PULL_STREAM": "out"}
    )

    assert (config.rides_topic, config.results_topic) == ("in", "out")


def test_config_lists_every_problem():
    with pytest.raises(ConfigError) as err:
        Config.from_env({"RESULT_TIMEOUT_S": "soon", "PUBLISH_TIMEOUT_S": "-1", "LOG_LEVEL": "x"})

    message = str(err.value)
    for name in ("PROJECT_ID", "RESULT_TIMEOUT_S", "PUBLISH_TIMEOUT_S", "LOG_LEVEL"):
        assert name in message
