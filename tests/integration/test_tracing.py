"""One ride, one trace, on the emulator with both services under gunicorn writing their spans."""

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.stack import Stack
from devstack.timeline import hop, ride_spans, timeline
from ride_stream.logs import TRACE_FIELD
from ride_stream.span_file import read_spans
from ride_stream.tracing import TRACE_ATTRIBUTE
from tests.kit.stream import publish, results_reader

pytestmark = pytest.mark.emulator

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
HOPS = [
    "request received",
    "claimed",
    "published",
    "push received",
    "predicted",
    "result published",
    "backend woken",
]
RIDE = {
    "PULocationID": 74,
    "DOLocationID": 168,
    "trip_distance": 3.2,
    "datetime": "2021-02-03T08:30:00",
}


@pytest.fixture
def stack(make_stack) -> Stack:
    # DEBUG: the backend's lines about each ride (published, result received) are written.
    return make_stack(trace_exporter="local", service_env={"LOG_LEVEL": "DEBUG"})


def spans_of(stack: Stack, ride_id: str, hops: int, timeout_s: float = 10.0) -> list[dict]:
    """The ride's spans once `hops` of them reached the span file (exported every 0.2 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = ride_spans(read_spans(stack.settings.span_file), ride_id)
        if len(spans) >= hops or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def confirm(stack: Stack, ride_id: str, traced: bool = True) -> requests.Response:
    """POST /rides with the ride, as a caller that asks to sample (`CALLER`) when `traced`."""
    headers = {"traceparent": CALLER} if traced else {}
    body = RIDE | {"ride_id": ride_id}
    return requests.post(f"{stack.backends[0].url}/rides", json=body, headers=headers, timeout=30)


def log_lines(path: Path, ride_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if str(line.get("ride_id")) == ride_id]


def test_a_confirmed_ride_is_one_trace_across_both_services_in_order(stack):
    response = confirm(stack, "traced-1")

    assert response.status_code == 200, response.text
    spans = spans_of(stack, "traced-1", len(HOPS))
    by_hop = {hop(span): span for span in spans}
    assert [hop(span) for span in spans] == HOPS
    assert {span["trace_id"] for span in spans} == {TRACE_ID}
    parents = {name: by_hop[name]["parent_id"] for name in HOPS}
    ids = {name: by_hop[name]["span_id"] for name in HOPS}
    assert parents == {
        "request received": "00f067aa0ba902b7",  # the caller's span
        "claimed": ids["request received"],
        "published": ids["request received"],
        "push received": ids["published"],
        "predicted": ids["push received"],
        "result published": ids["push received"],
        "backend woken": ids["result published"],
    }
    assert by_hop["request received"]["end"] >= by_hop["backend woken"]["end"]
    assert {by_hop[name]["service"] for name in HOPS[3:6]} == {"predictor"}
    assert by_hop["push received"]["attributes"]["messaging.system"] == "gcp_pubsub"
    assert by_hop["predicted"]["attributes"]["model_version"] == "ride-duration/1"
    printed = list(timeline(spans))
    assert "answered 200" in printed[0]
    assert printed[-1].split()[2:5] == ["backend", "answered", "200"]


def test_the_ride_and_its_result_carry_googclient_traceparent(stack):
    t = stack.settings.topology
    with (
        results_reader(stack.address, t, t.rides_topic) as rides,
        results_reader(stack.address, t) as results,
    ):
        response = confirm(stack, "traced-2")
        (ride,) = rides(1, 10)
        (result,) = results(1, 10)

    assert response.status_code == 200
    spans = {hop(span): span for span in spans_of(stack, "traced-2", len(HOPS))}
    published, answered = spans["published"], spans["result published"]
    assert ride.attributes[TRACE_ATTRIBUTE] == f"00-{TRACE_ID}-{published['span_id']}-01"
    assert result.attributes[TRACE_ATTRIBUTE] == f"00-{TRACE_ID}-{answered['span_id']}-01"


def test_both_services_log_lines_about_the_ride_carry_its_trace(stack):
    response = confirm(stack, "traced-3")
    assert response.status_code == 200
    spans_of(stack, "traced-3", len(HOPS))  # the spans are out: so are the lines before them

    workdir = stack.settings.workdir
    backend = log_lines(workdir / f"backend-{stack.backends[0].port}.log", "traced-3")
    predictor = log_lines(workdir / "predictor.log", "traced-3")
    assert {line["message"] for line in backend} == {"ride published", "result received"}
    assert [line["message"] for line in predictor] == ["result published"]
    traces = {line[TRACE_FIELD] for line in backend + predictor}
    assert traces == {f"projects/{stack.settings.project}/traces/{TRACE_ID}"}


def test_a_ride_without_trace_context_is_answered_in_a_trace_of_its_own(stack):
    response = confirm(stack, "untraced", traced=False)

    assert response.status_code == 200, response.text
    spans = spans_of(stack, "untraced", len(HOPS))
    assert [hop(span) for span in spans] == HOPS
    assert spans[0]["parent_id"] is None
    assert len({span["trace_id"] for span in spans}) == 1


def test_a_message_from_another_producer_starts_its_own_trace_and_is_answered(stack):
    t = stack.settings.topology
    course_event = {"ride_id": 123, "ride": {k: v for k, v in RIDE.items() if k != "datetime"}}
    with results_reader(stack.address, t) as results:
        publish(stack.address, t, json.dumps(course_event).encode())  # as gcloud would
        (result,) = results(1, 10)

    assert json.loads(result.data)["ride_id"] == 123
    spans = spans_of(stack, "123", 3)
    assert [hop(span) for span in spans] == ["push received", "predicted", "result published"]
    push = spans[0]
    assert push["parent_id"] is None  # the emulator's push request carries no trace either
    trace_id, span_id = result.attributes[TRACE_ATTRIBUTE].split("-")[1:3]
    assert trace_id == push["trace_id"]
    assert span_id == spans[2]["span_id"]
