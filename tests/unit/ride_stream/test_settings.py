"""ride_stream.settings: environment reads that list every problem at once."""

import pytest

from ride_stream.settings import ConfigError, Env


def test_a_setting_under_its_former_name_still_counts():
    env = Env({"BACKEND_PULL_STREAM": "old-results"})

    assert env.text("RESULTS_TOPIC", "default", formerly="BACKEND_PULL_STREAM") == "old-results"


def test_the_new_name_wins_over_the_former_one():
    env = Env({"RESULTS_TOPIC": "new", "BACKEND_PULL_STREAM": "old"})

    assert env.text("RESULTS_TOPIC", "default", formerly="BACKEND_PULL_STREAM") == "new"


def test_an_empty_value_means_the_default():
    assert Env({"RESULTS_TOPIC": "  "}).text("RESULTS_TOPIC", "default") == "default"


@pytest.mark.parametrize(
    "raw, allow_zero, problem",
    [
        ("ten", False, "T must be a number, got 'ten'"),
        ("-1", False, "T must be positive, got '-1'"),
        ("0", False, "T must be positive, got '0'"),
        ("-1", True, "T must be non-negative, got '-1'"),
    ],
)
def test_bad_numbers_are_named(raw, allow_zero, problem):
    env = Env({"T": raw})

    env.number("T", 3.0, allow_zero=allow_zero)

    assert env.errors == [problem]


def test_zero_is_allowed_where_asked():
    env = Env({"T": "0"})

    assert env.number("T", 3.0, allow_zero=True) == 0.0
    assert env.errors == []


def test_check_lists_every_problem():
    env = Env({"LOG_LEVEL": "loud", "T": "x"})
    env.required("PROJECT_ID")
    env.number("T", 1.0)
    env.log_level()

    with pytest.raises(ConfigError) as err:
        env.check("demo")

    message = str(err.value)
    assert message.startswith("invalid demo configuration: ")
    assert "PROJECT_ID is required" in message
    assert "T must be a number" in message
    assert "LOG_LEVEL must be a logging level name, got 'LOUD'" in message
