"""predictor_service.envelope: the push envelope read."""

import json
from datetime import UTC, datetime

import pytest

from devstack.pubsub import push_envelope
from predictor_service.envelope import parse_envelope


def test_envelope_yields_data_attributes_and_ids():
    message = parse_envelope(push_envelope(b"payload", {"a": "1"}))

    assert (message.data, message.attributes, message.message_id) == (b"payload", {"a": "1"}, "1")
    assert message.subscription == "projects/test-project/subscriptions/test"


def with_publish_time(value: object) -> bytes:
    envelope = json.loads(push_envelope(b"payload"))
    envelope["message"]["publishTime"] = value
    return json.dumps(envelope).encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-02-03T13:30:00Z", datetime(2021, 2, 3, 13, 30, tzinfo=UTC)),
        ("2021-02-03T13:30:00.123456789Z", datetime(2021, 2, 3, 13, 30, 0, 123456, tzinfo=UTC)),
        ("2021-02-03T08:30:00.5-05:00", datetime(2021, 2, 3, 13, 30, 0, 500000, tzinfo=UTC)),
    ],
)
def test_publish_time_is_read_to_the_microsecond(value, expected):
    assert parse_envelope(with_publish_time(value)).publish_time == expected


@pytest.mark.parametrize("value", ["yesterday", 1612359000, "2021-02-30T13:30:00Z"])
def test_an_unreadable_publish_time_is_none(value):
    assert parse_envelope(with_publish_time(value)).publish_time is None


def test_an_envelope_without_publish_time_has_none():
    assert parse_envelope(push_envelope(b"payload")).publish_time is None
