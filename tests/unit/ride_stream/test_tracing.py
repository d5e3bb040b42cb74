"""Trace context in and out of requests and messages; spans recorded only when sampled."""

import json
import logging

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ride_stream.logs import TRACE_FIELD, JsonFormatter
from ride_stream.settings import ConfigError, Env
from ride_stream.span_file import SpanFile, read_spans
from ride_stream.tracing import TRACE_ATTRIBUTE, Tracing, message_attributes

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def recorded(ratio=1.0) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing("test", ratio, exporter), exporter


def finished(tracing: Tracing, exporter: InMemorySpanExporter) -> list:
    tracing.provider.force_flush()
    return list(exporter.get_finished_spans())


def test_a_request_span_continues_the_callers_traceparent():
    tracing, exporter = recorded()

    with tracing.server({"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{PARENT}-01"}, "POST /rides"):
        pass

    (span,) = finished(tracing, exporter)
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert f"{span.parent.span_id:016x}" == PARENT


def test_a_request_span_continues_x_cloud_trace_context():
    tracing, exporter = recorded()

    with tracing.server({"HTTP_X_CLOUD_TRACE_CONTEXT": f"{TRACE_ID}/123;o=1"}, "POST /rides"):
        pass

    (span,) = finished(tracing, exporter)
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent.span_id == 123


@pytest.mark.parametrize("header", ["", "garbage", f"00-{'0' * 32}-{PARENT}-01"])
def test_a_request_without_usable_context_starts_a_trace(header):
    tracing, exporter = recorded()

    with tracing.server({"HTTP_TRACEPARENT": header}, "POST /rides"):
        pass

    (span,) = finished(tracing, exporter)
    assert span.parent is None
    assert span.context.trace_id != 0


def test_a_message_carries_its_publish_span_and_the_consumer_continues_it():
    tracing, exporter = recorded()

    with tracing.producer("rides publish") as publishing:
        attributes = message_attributes(publishing)
    with tracing.consumer(attributes, "push subscribe", {"HTTP_TRACEPARENT": "ignored"}):
        pass

    producer, consumer = finished(tracing, exporter)
    assert attributes[TRACE_ATTRIBUTE] == (
        f"00-{producer.context.trace_id:032x}-{producer.context.span_id:016x}-"
        f"{int(producer.context.trace_flags):02x}"
    )
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent.span_id == producer.context.span_id


def test_a_message_without_the_attribute_continues_the_push_request():
    tracing, exporter = recorded()

    with tracing.consumer({}, "push subscribe", {"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{PARENT}-01"}):
        pass

    (span,) = finished(tracing, exporter)
    assert f"{span.context.trace_id:032x}" == TRACE_ID


def test_a_sampled_caller_is_recorded_at_ratio_zero_and_an_unsampled_one_is_not():
    tracing, exporter = recorded(0.0)

    with tracing.server({"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{PARENT}-01"}, "sampled"):
        pass
    with tracing.server({"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{PARENT}-00"}, "unsampled"):
        pass
    with tracing.server({}, "root"):
        pass

    assert [span.name for span in finished(tracing, exporter)] == ["sampled"]


def test_an_unsampled_span_still_carries_its_trace_to_the_message():
    tracing = Tracing("test", 0.0)  # nothing recorded or exported

    with tracing.server({"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{PARENT}-00"}, "POST /rides"):
        with tracing.producer("rides publish") as publishing:
            attributes = message_attributes(publishing)

    assert not publishing.is_recording()
    assert attributes[TRACE_ATTRIBUTE].startswith(f"00-{TRACE_ID}-")


def test_log_lines_inside_a_span_carry_its_trace():
    tracing = Tracing("test", 0.0)
    record = logging.makeLogRecord({"msg": "ride taken", "levelname": "INFO"})

    with tracing.consumer({TRACE_ATTRIBUTE: f"00-{TRACE_ID}-{PARENT}-01"}, "push subscribe"):
        line = json.loads(JsonFormatter("demo").format(record))

    assert line[TRACE_FIELD] == f"projects/demo/traces/{TRACE_ID}"


def test_a_server_error_marks_the_span_and_a_client_error_does_not():
    tracing, exporter = recorded()

    class Refused(Exception):
        code = 422

    for error in (Refused(), RuntimeError("down")):
        with pytest.raises(type(error)), tracing.server({}, type(error).__name__):
            raise error

    statuses = {span.name: span.status.status_code.name for span in finished(tracing, exporter)}
    assert statuses == {"Refused": "UNSET", "RuntimeError": "ERROR"}


def test_the_span_file_keeps_the_recent_spans_within_its_bound(tmp_path):
    path = tmp_path / "spans.jsonl"
    tracing = Tracing("test", 1.0, SpanFile(path, max_bytes=2000))

    for i in range(40):
        with tracing.internal(f"hop-{i}"):
            pass
        tracing.provider.force_flush()

    names = [span["name"] for span in read_spans(path)]
    assert names[-1] == "hop-39"
    assert "hop-0" not in names
    assert path.stat().st_size <= 2000


def test_tracing_settings_name_every_problem():
    env = Env({"TRACE_EXPORTER": "jaeger", "TRACE_SAMPLE_RATIO": "2"})
    env.tracing()
    with pytest.raises(ConfigError, match="TRACE_EXPORTER.*TRACE_SAMPLE_RATIO"):
        env.check("test")


def test_a_local_exporter_needs_its_file():
    env = Env({"TRACE_EXPORTER": "local"})
    env.tracing()
    with pytest.raises(ConfigError, match="TRACE_FILE is required"):
        env.check("test")


def test_tracing_off_makes_no_span_and_carries_no_context():
    tracing = Tracing("test")

    with tracing.server({"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{PARENT}-01"}, "POST /rides"):
        with tracing.producer("rides publish") as publishing:
            attributes = message_attributes(publishing)

    assert not publishing.is_recording()
    assert attributes == {}


def test_a_recorded_span_gives_exporters_what_the_sdks_would():
    tracing, exporter = recorded()

    with tracing.consumer(
        {TRACE_ATTRIBUTE: f"00-{TRACE_ID}-{PARENT}-01"}, "push subscribe"
    ) as push:
        push.set_attributes({"messaging.system": "gcp_pubsub", "ride.id": "r1"})
        with tracing.internal("predict") as predicting:
            predicting.set_attribute("model_version", "m/1")

    predict, consumer = finished(tracing, exporter)
    assert consumer.name == "push subscribe"
    assert consumer.kind.name == "CONSUMER" and predict.kind.name == "INTERNAL"
    assert consumer.resource.attributes["service.name"] == "test"
    assert consumer.instrumentation_scope.name == "ride_stream"
    assert dict(consumer.attributes) == {"messaging.system": "gcp_pubsub", "ride.id": "r1"}
    assert dict(predict.attributes) == {"model_version": "m/1"}
    assert predict.parent.span_id == consumer.context.span_id
    assert predict.context.trace_id == consumer.context.trace_id == int(TRACE_ID, 16)
    assert consumer.start_time <= predict.start_time <= predict.end_time <= consumer.end_time
    assert not push.is_recording()  # ended: later attributes are not kept
    push.set_attribute("late", 1)
    assert "late" not in consumer.attributes


def test_a_failed_recorded_span_carries_the_exception_event():
    tracing, exporter = recorded()

    with pytest.raises(RuntimeError), tracing.server({}, "POST /rides"):
        raise RuntimeError("store down")

    (span,) = finished(tracing, exporter)
    assert span.status.status_code.name == "ERROR"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "RuntimeError"
    assert event.attributes["exception.message"] == "store down"
    assert "store down" in event.attributes["exception.stacktrace"]


def test_a_trace_started_here_is_sampled_with_a_random_id_flag():
    tracing, exporter = recorded()

    with tracing.server({}, "POST /rides") as request:
        attributes = message_attributes(request)

    (span,) = finished(tracing, exporter)
    assert span.parent is None
    assert attributes[TRACE_ATTRIBUTE].endswith("-03")  # sampled, random trace id (W3C)


def test_under_an_unsampled_span_hops_reuse_it_and_the_message_carries_it():
    tracing, exporter = recorded(0.0)

    with tracing.consumer({TRACE_ATTRIBUTE: f"00-{TRACE_ID}-{PARENT}-00"}, "push") as push:
        with tracing.internal("predict") as predicting, tracing.producer("publish") as publishing:
            attributes = message_attributes(publishing)

    assert predicting is push and publishing is push
    ids = push.get_span_context()
    assert attributes[TRACE_ATTRIBUTE] == f"00-{TRACE_ID}-{ids.span_id:016x}-00"
    assert ids.span_id != int(PARENT, 16)  # the push's own span, not the caller's
    assert finished(tracing, exporter) == []


def test_a_hop_outside_any_span_starts_a_trace():
    tracing = Tracing("test", 0.0)

    with tracing.producer("rides publish") as publishing:
        attributes = message_attributes(publishing)

    assert attributes[TRACE_ATTRIBUTE].startswith("00-")
    assert attributes[TRACE_ATTRIBUTE].endswith("-00")
