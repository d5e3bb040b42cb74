"""One ride, one trace: OpenTelemetry spans, and the trace context a ride's messages carry.

A span continues, in this order: the message's `googclient_traceparent` attribute (W3C
trace-context, the attribute the official Pub/Sub client injects and extracts when its
OpenTelemetry tracing is on, google/cloud/pubsub_v1/open_telemetry/context_propagation.py),
then the request's `traceparent` or `X-Cloud-Trace-Context` header; without any, it starts a
trace. With tracing on, every ride has real ids even when not sampled, so the trace id travels
and both services' log lines carry it (ride_stream.logs); only sampled spans are recorded and
exported. An unsampled ride has one span a service (its request's or its message's) and its
hops reuse it; attributes are set only on recording spans.
"""

import contextlib
import random
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from .logs import CLOUD_TRACE, TRACEPARENT

TRACE_ATTRIBUTE = "googclient_traceparent"
MESSAGING_SYSTEM = "gcp_pubsub"
RIDE_ID = "ride.id"  # the ride a span is about: what `make trace RIDE=...` looks for
EXPORTERS = ("none", "local", "cloud")
# Local spans reach their file this long after they end: `make trace` right after a ride sees it.
LOCAL_EXPORT_DELAY_MS = 200
CLOUD_EXPORT_DELAY_MS = 5000  # the SDK's default


@dataclass(frozen=True)
class TraceSettings:
    # "none": ids and propagation only, nothing recorded; "local": sampled spans appended to
    # `file` (make run); "cloud": sampled spans exported to Cloud Trace (the deploy).
    exporter: str = "none"
    sample_ratio: float = 0.1  # of the traces this service starts; a sampled caller always is
    file: str = ""


class Tracing:
    """The tracer of one service process, and the spans of a ride's hops.

    Without a `ratio` tracing is off: no span, no trace context on messages, and each method
    returns the same do-nothing block, so that a ride pays two calls for it. Log lines then
    carry the trace of the request's headers, as each service's own.

    With one, a span is sampled as its parent was (a caller's, a message's, the current one),
    and a trace this service starts is sampled at `ratio`: the SDK's ParentBased(TraceIdRatio)
    rule. Spans are made here, not by the SDK's tracer: an unsampled one is ids and a context
    (and its service's hops reuse it), a sampled one is recorded lean and handed to the SDK's
    batch processor and exporter as a ReadableSpan. The SDK's own spans cost the services
    twice the CPU at 10 % sampling (docs/benchmarks.md, "Tracing: what it costs").
    """

    def __init__(
        self,
        service: str,
        ratio: float | None = None,
        exporter: SpanExporter | None = None,
        export_delay_ms: int = CLOUD_EXPORT_DELAY_MS,
    ) -> None:
        self.provider: TracerProvider | None = None
        self.ratio = ratio or 0.0
        self.processor: BatchSpanProcessor | None = None
        if ratio is None:
            return
        self.resource = Resource.create({"service.name": service})
        # The provider holds the processor (force_flush, shutdown); spans are made here.
        self.provider = TracerProvider(sampler=ParentBased(ALWAYS_ON), resource=self.resource)
        if exporter is not None:
            # Exported in batches from the processor's own thread, off the request's path.
            self.processor = BatchSpanProcessor(exporter, schedule_delay_millis=export_delay_ms)
            self.provider.add_span_processor(self.processor)

    @classmethod
    def from_settings(cls, service: str, settings: TraceSettings, project_id: str) -> "Tracing":
        """Build the process's tracing as configured: call it in the worker, after the fork."""
        if settings.exporter == "none":
            return cls(service)
        ratio = settings.sample_ratio
        if settings.exporter == "cloud":
            # Imported only when deployed: it builds a Cloud Trace gRPC client.
            from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

            return cls(service, ratio, CloudTraceSpanExporter(project_id=project_id))
        from .span_file import SpanFile

        return cls(service, ratio, SpanFile(settings.file), LOCAL_EXPORT_DELAY_MS)

    def server(self, environ: Mapping[str, Any], name: str) -> contextlib.AbstractContextManager:
        """A request's span, continuing the caller's trace headers."""
        if self.provider is None:
            return _OFF
        return _Active(self._start(name, remote_parent(environ), SpanKind.SERVER))

    def consumer(
        self, attributes: Mapping[str, str], name: str, environ: Mapping[str, Any] | None = None
    ) -> contextlib.AbstractContextManager:
        """A received message's span, continuing its trace attribute, else the request's."""
        if self.provider is None:
            return _OFF
        parent = parse_traceparent(attributes.get(TRACE_ATTRIBUTE, ""))
        if parent is None and environ is not None:
            parent = remote_parent(environ)
        return _Active(self._start(name, parent, SpanKind.CONSUMER))

    def producer(self, name: str) -> contextlib.AbstractContextManager:
        """A publish's span, a child of the current one; `message_attributes` gives its context."""
        if self.provider is None:
            return _OFF
        return self._child(name, SpanKind.PRODUCER)

    def internal(self, name: str) -> contextlib.AbstractContextManager:
        if self.provider is None:
            return _OFF
        return self._child(name, SpanKind.INTERNAL)

    def _start(self, name: str, above: SpanContext | None, kind: SpanKind) -> Any:
        """A span under `above` (the current span when None), recorded if it is sampled."""
        if above is None:
            above = trace.get_current_span().get_span_context()
        if not above.is_valid:
            if random.random() >= self.ratio:
                ids = SpanContext(random.getrandbits(128) or 1, random.getrandbits(64) or 1, False)
                return NonRecordingSpan(ids)
            # A trace started here: its id is random, as W3C's flag says (the SDK's default).
            ids = SpanContext(
                random.getrandbits(128) or 1, random.getrandbits(64) or 1, False, _ROOT_FLAGS
            )
            return _Recorded(self, name, ids, None, kind)
        if not above.trace_flags.sampled:
            return NonRecordingSpan(SpanContext(above.trace_id, random.getrandbits(64) or 1, False))
        ids = SpanContext(
            above.trace_id, random.getrandbits(64) or 1, False, above.trace_flags, above.trace_state
        )
        return _Recorded(self, name, ids, above, kind)

    def _child(self, name: str, kind: SpanKind) -> contextlib.AbstractContextManager:
        """A span under the current one; under an unsampled one, the current one itself."""
        current = trace.get_current_span()
        above = current.get_span_context()
        if above.is_valid and not above.trace_flags.sampled:
            # Nothing is recorded below an unsampled span: its ids already carry the trace to
            # log lines and messages, so a child would cost its ids and a context for nothing.
            return contextlib.nullcontext(current)
        return _Active(self._start(name, None, kind))

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


_OFF = contextlib.nullcontext(trace.INVALID_SPAN)
_UNSET = Status(StatusCode.UNSET)
_ROOT_FLAGS = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_SCOPE = InstrumentationScope("ride_stream")


class _Recorded(trace.Span):
    """A sampled span: its name, ids, kind, times, attributes, events and status, no more.

    The SDK's span does the same with a lock, bounded attribute and event lists, a sampler
    call and a processor chain for each one: about four times the CPU, for what the
    exporters read from the ReadableSpan this one hands to the batch processor when it ends
    (docs/benchmarks.md, "Tracing: what it costs").
    """

    __slots__ = ("_tracing", "_name", "_ids", "_parent", "_kind", "_start", "_end", "_attributes",
                 "_events", "_status")  # fmt: skip

    def __init__(
        self, tracing: "Tracing", name: str, ids: SpanContext, parent: SpanContext | None,
        kind: SpanKind,
    ) -> None:  # fmt: skip
        self._tracing, self._name, self._ids, self._parent, self._kind = (
            tracing, name, ids, parent, kind
        )  # fmt: skip
        self._start = time.time_ns()
        self._end: int | None = None
        self._attributes: dict[str, Any] = {}
        self._events: list[Event] = []
        self._status = _UNSET

    def get_span_context(self) -> SpanContext:
        return self._ids

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end is None:
            self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end is None:
            self._attributes.update(attributes)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        if self._end is None:
            self._events.append(Event(name, attributes, timestamp))

    def update_name(self, name: str) -> None:
        self._name = name

    def set_status(self, status: Any, description: str | None = None) -> None:
        if self._end is None:
            self._status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Any = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An "exception" event, with the attributes the SDK's span gives it."""
        kind = type(exception)
        module = kind.__module__
        described = {
            "exception.type": kind.__qualname__
            if module in ("", "builtins")
            else f"{module}.{kind.__qualname__}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        self.add_event("exception", described | dict(attributes or {}), timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time or time.time_ns()
        processor = self._tracing.processor
        if processor is not None:
            processor.on_end(
                ReadableSpan(
                    self._name,
                    self._ids,
                    self._parent,
                    self._tracing.resource,
                    self._attributes,
                    self._events,
                    (),
                    self._kind,
                    None,
                    self._status,
                    self._start,
                    self._end,
                    _SCOPE,
                )
            )


class _Active:
    """Make `span` the current span for a block, end it after; a class: cheaper than a generator."""

    __slots__ = ("span", "token")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.token: object = None

    def __enter__(self) -> Any:
        self.token = context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, kind: Any, err: BaseException | None, _traceback: Any) -> None:
        span = self.span
        # An HTTP error under 500 is the caller's, not this span's failure.
        if err is not None and span.is_recording() and getattr(err, "code", 500) >= 500:
            span.record_exception(err)
            span.set_status(trace.StatusCode.ERROR, f"{type(err).__name__}: {err}")
        context.detach(self.token)  # type: ignore[arg-type]
        span.end()


def message_attributes(span: Any) -> dict[str, str]:
    """The attribute that carries `span`'s context with a message, as the official client's.

    W3C `traceparent`, 00-TRACE_ID-SPAN_ID-FLAGS; nothing when tracing is off.
    """
    ctx = span.get_span_context()
    if not ctx.is_valid:  # tracing off
        return {}
    return {
        TRACE_ATTRIBUTE: f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    }


def messaging(destination: str, operation: str, message_id: str = "") -> dict[str, str]:
    """The messaging semantic conventions' attributes of a Pub/Sub span."""
    attributes = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.destination.name": destination,
        "messaging.operation.type": operation,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


def parse_traceparent(value: str) -> SpanContext | None:
    """The remote parent a W3C `traceparent` names; None when it is absent or malformed."""
    if not value or not (match := TRACEPARENT.fullmatch(value.strip())):
        return None
    trace_id, span_id, flags = (int(group, 16) for group in match.groups())
    return _remote(trace_id, span_id, flags & 1)


def remote_parent(environ: Mapping[str, Any]) -> SpanContext | None:
    """The caller's span from `traceparent`, else from `X-Cloud-Trace-Context`, else None."""
    parent = parse_traceparent(environ.get("HTTP_TRACEPARENT", ""))
    if parent is not None:
        return parent
    match = CLOUD_TRACE.fullmatch(environ.get("HTTP_X_CLOUD_TRACE_CONTEXT", "").strip())
    if match is None or match.group(2) is None or not 0 < int(match.group(2)) < 2**64:
        return None
    trace_id, span_id, sampled = match.groups()
    return _remote(int(trace_id, 16), int(span_id), int(sampled == "1"))


def _remote(trace_id: int, span_id: int, flags: int) -> SpanContext | None:
    span_context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return span_context if span_context.is_valid else None
