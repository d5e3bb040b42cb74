"""One ride, one trace: OpenTelemetry spans, and the trace context a ride's messages carry.

A span continues, in this order: the message's `googclient_traceparent` attribute (W3C
trace-context, the attribute the official Pub/Sub client injects and extracts when its
OpenTelemetry tracing is on, google/cloud/pubsub_v1/open_telemetry/context_propagation.py),
then the request's `traceparent` or `X-Cloud-Trace-Context` header; without any, it starts a
trace. With tracing on, every span has real ids even when not sampled, so the trace id travels
and both services' log lines carry it (ride_stream.logs); only sampled spans are recorded and
exported. Attributes are set only on recording spans: an unsampled span costs its ids and no
more.
"""

import contextlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

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
    rule. An unsampled span is made here, ids and context only: the SDK's own path for it
    costs several times as much, on every ride (docs/benchmarks.md, "Tracing").
    """

    def __init__(
        self,
        service: str,
        ratio: float | None = None,
        exporter: SpanExporter | None = None,
        export_delay_ms: int = CLOUD_EXPORT_DELAY_MS,
    ) -> None:
        self.provider: TracerProvider | None = None
        self.tracer: Any = None
        self.ratio = ratio or 0.0
        if ratio is None:
            return
        # Only sampled spans reach the SDK: its sampler records each one it gets.
        self.provider = TracerProvider(
            sampler=ParentBased(ALWAYS_ON), resource=Resource.create({"service.name": service})
        )
        if exporter is not None:
            # Exported in batches from the processor's own thread, off the request's path.
            self.provider.add_span_processor(
                BatchSpanProcessor(exporter, schedule_delay_millis=export_delay_ms)
            )
        self.tracer = self.provider.get_tracer("ride_stream")

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
        if self.tracer is None:
            return _OFF
        return _Active(self._start(name, remote_parent(environ), SpanKind.SERVER))

    def consumer(
        self, attributes: Mapping[str, str], name: str, environ: Mapping[str, Any] | None = None
    ) -> contextlib.AbstractContextManager:
        """A received message's span, continuing its trace attribute, else the request's."""
        if self.tracer is None:
            return _OFF
        parent = parse_traceparent(attributes.get(TRACE_ATTRIBUTE, ""))
        if parent is None and environ is not None:
            parent = remote_parent(environ)
        return _Active(self._start(name, parent, SpanKind.CONSUMER))

    def producer(self, name: str) -> contextlib.AbstractContextManager:
        """A publish's span, a child of the current one; `message_attributes` gives its context."""
        if self.tracer is None:
            return _OFF
        return _Active(self._start(name, None, SpanKind.PRODUCER))

    def internal(self, name: str) -> contextlib.AbstractContextManager:
        if self.tracer is None:
            return _OFF
        return _Active(self._start(name, None, SpanKind.INTERNAL))

    def _start(self, name: str, parent: context.Context | None, kind: SpanKind) -> Any:
        """A span under `parent` (the current span when None): the SDK's if it is sampled."""
        above = trace.get_current_span(parent).get_span_context()
        if above.is_valid:
            sampled, trace_id = above.trace_flags.sampled, above.trace_id
        else:
            sampled, trace_id = random.random() < self.ratio, random.getrandbits(128) or 1
        if sampled:
            return self.tracer.start_span(name, parent, kind)
        return NonRecordingSpan(SpanContext(trace_id, random.getrandbits(64) or 1, False))

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


_OFF = contextlib.nullcontext(trace.INVALID_SPAN)


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


def parse_traceparent(value: str) -> context.Context | None:
    """The remote parent a W3C `traceparent` names; None when it is absent or malformed."""
    if not value or not (match := TRACEPARENT.fullmatch(value.strip())):
        return None
    trace_id, span_id, flags = (int(group, 16) for group in match.groups())
    return _remote(trace_id, span_id, flags & 1)


def remote_parent(environ: Mapping[str, Any]) -> context.Context | None:
    """The caller's span from `traceparent`, else from `X-Cloud-Trace-Context`, else None."""
    parent = parse_traceparent(environ.get("HTTP_TRACEPARENT", ""))
    if parent is not None:
        return parent
    match = CLOUD_TRACE.fullmatch(environ.get("HTTP_X_CLOUD_TRACE_CONTEXT", "").strip())
    if match is None or match.group(2) is None or not 0 < int(match.group(2)) < 2**64:
        return None
    trace_id, span_id, sampled = match.groups()
    return _remote(int(trace_id, 16), int(span_id), int(sampled == "1"))


def _remote(trace_id: int, span_id: int, flags: int) -> context.Context | None:
    span_context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    if not span_context.is_valid:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))
