"""ride_stream.logs: JSON lines with Cloud Logging's trace fields."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ride_stream.logs import (
    SAMPLED_FIELD,
    SPAN_FIELD,
    TRACE_FIELD,
    JsonFormatter,
    TraceContext,
    trace_fields,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """Records of the logger `test.logs`, formatted as the services format them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("demo-project"))
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def logging_app(environ, start_response):
    logging.getLogger("test.logs").warning("inside", extra={"ride_id": "r1"})
    start_response("204 No Content", [])
    return [b""]


def test_cloud_trace_context_gives_trace_span_and_sampling() -> None:
    fields = trace_fields("demo-project", f"{TRACE_ID}/123;o=1", "")

    assert fields == {
        TRACE_FIELD: f"projects/demo-project/traces/{TRACE_ID}",
        SPAN_FIELD: f"{123:016x}",
        SAMPLED_FIELD: True,
    }


def test_cloud_trace_context_with_only_the_trace_id() -> None:
    assert trace_fields("p", TRACE_ID.upper(), "") == {TRACE_FIELD: f"projects/p/traces/{TRACE_ID}"}


def test_traceparent_is_read_when_there_is_no_cloud_trace_context() -> None:
    fields = trace_fields("p", "", f"00-{TRACE_ID}-00f067aa0ba902b7-00")

    assert fields == {
        TRACE_FIELD: f"projects/p/traces/{TRACE_ID}",
        SPAN_FIELD: "00f067aa0ba902b7",
        SAMPLED_FIELD: False,
    }


def test_a_span_out_of_range_is_left_out() -> None:
    assert trace_fields("p", f"{TRACE_ID}/{2**64}", "") == {
        TRACE_FIELD: f"projects/p/traces/{TRACE_ID}"
    }


@pytest.mark.parametrize(
    "cloud_trace, traceparent",
    [
        ("", ""),
        ("not-a-trace", ""),
        (f"{TRACE_ID}x/1", ""),
        ("", f"01-{TRACE_ID}-00f067aa0ba902b7-01"),
        ('"}, {"severity": "EMERGENCY', ""),
    ],
)
def test_malformed_headers_give_no_trace(cloud_trace: str, traceparent: str) -> None:
    assert trace_fields("p", cloud_trace, traceparent) == {}


def test_a_line_written_while_serving_a_request_carries_its_trace(lines) -> None:
    app = TraceContext(logging_app)

    app({"HTTP_X_CLOUD_TRACE_CONTEXT": f"{TRACE_ID}/1;o=1"}, lambda *_: None)

    [record] = records(lines)
    assert record[TRACE_FIELD] == f"projects/demo-project/traces/{TRACE_ID}"
    assert (record["severity"], record["message"], record["ride_id"]) == ("WARNING", "inside", "r1")


def test_the_trace_ends_with_its_request(lines) -> None:
    app = TraceContext(logging_app)
    app({"HTTP_TRACEPARENT": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}, lambda *_: None)

    app({}, lambda *_: None)
    logging.getLogger("test.logs").info("between requests")

    first, second, third = records(lines)
    assert TRACE_FIELD in first
    assert TRACE_FIELD not in second
    assert TRACE_FIELD not in third
