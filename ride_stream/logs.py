"""JSON log lines that Cloud Logging reads, grouped by the request that wrote them.

Each record is one object with `severity`, `message` and any `extra` fields; a record written
inside a span (ride_stream.tracing) carries that span's trace as `logging.googleapis.com/trace`,
so that "show entries for this trace" lists a ride's lines from both services; one written
while a request without a span is served carries the trace of the request's headers, so that
Cloud Logging shows them under its request log entry.
https://cloud.google.com/logging/docs/structured-logging#special-payload-fields
"""

import contextlib
import contextvars
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from gunicorn import glogging
from opentelemetry import trace

TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"
_RESERVED = set(vars(logging.makeLogRecord({})))
# Their DEBUG lines print signed S3 requests, AWS access key id included: never below INFO.
_QUIET_AT_DEBUG = ("botocore", "boto3", "s3transfer", "urllib3")
# `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS`, the span a decimal number;
# `traceparent: 00-TRACE_ID-SPAN_ID-FLAGS` (W3C), the span 16 hex digits. Cloud Run sets both.
# https://cloud.google.com/trace/docs/trace-context
CLOUD_TRACE = re.compile(r"([0-9a-f]{32})(?:/(\d{1,20}))?(?:;o=([01]))?", re.IGNORECASE)
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", re.IGNORECASE)

# The trace headers of the request this thread serves: (X-Cloud-Trace-Context, traceparent).
_request_trace: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "request_trace", default=None
)


def trace_fields(project_id: str, cloud_trace: str, traceparent: str) -> dict[str, Any]:
    """Return Cloud Logging's trace fields for a request's headers; empty if neither parses."""
    if match := CLOUD_TRACE.fullmatch(cloud_trace.strip()):
        trace_id, span, sampled = match.groups()
        fields: dict[str, Any] = {TRACE_FIELD: f"projects/{project_id}/traces/{trace_id.lower()}"}
        if span is not None and int(span) < 2**64:
            fields[SPAN_FIELD] = f"{int(span):016x}"
        if sampled is not None:
            fields[SAMPLED_FIELD] = sampled == "1"
        return fields
    if match := TRACEPARENT.fullmatch(traceparent.strip()):
        trace_id, span, flags = match.groups()
        return {
            TRACE_FIELD: f"projects/{project_id}/traces/{trace_id.lower()}",
            SPAN_FIELD: span.lower(),
            SAMPLED_FIELD: bool(int(flags, 16) & 1),
        }
    return {}


def _trace_headers(environ: Mapping[str, Any]) -> tuple[str, str] | None:
    headers = (
        environ.get("HTTP_X_CLOUD_TRACE_CONTEXT", ""),
        environ.get("HTTP_TRACEPARENT", ""),
    )
    return headers if any(headers) else None


@contextlib.contextmanager
def request_trace(environ: Mapping[str, Any]) -> Iterator[None]:
    """Let every record written inside the block carry the trace of the request in `environ`."""
    token = _request_trace.set(_trace_headers(environ))
    try:
        yield
    finally:
        _request_trace.reset(token)


class TraceContext:
    """WSGI middleware: the request's trace headers reach the log records written serving it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        # Parsing waits for the formatter: most requests write no log line at all. Set and
        # reset inline, not through request_trace's generator: this runs on every request.
        token = _request_trace.set(_trace_headers(environ))
        try:
            return self.app(environ, start_response)
        finally:
            _request_trace.reset(token)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object with severity, message, trace and `extra` fields."""

    def __init__(self, project_id: str = "") -> None:
        super().__init__()
        self.project_id = project_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:  # a ride's span: the trace both services' lines about it share
            entry[TRACE_FIELD] = f"projects/{self.project_id}/traces/{span.trace_id:032x}"
            entry[SPAN_FIELD] = f"{span.span_id:016x}"
            entry[SAMPLED_FIELD] = span.trace_flags.sampled
        elif (headers := _request_trace.get()) is not None:
            entry.update(trace_fields(self.project_id, *headers))
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, project_id: str = "") -> None:
    """Send every record to stdout as JSON, once per process."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.project_id = project_id
            root.setLevel(level)
            return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(project_id))
    root.handlers = [handler]
    root.setLevel(level)
    for name in _QUIET_AT_DEBUG:
        logging.getLogger(name).setLevel(logging.INFO)


class GunicornLogger(glogging.Logger):
    """Gunicorn's error and access logs as the same JSON lines (`logger_class` in gunicorn_conf).

    Only formatters change: the access log stays off unless `accesslog` is set, as gunicorn
    skips building it then; Cloud Run writes its own request log for every request.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # Gunicorn builds its logger before any app config exists; like gunicorn_conf.py's own
        # settings, the project comes straight from the environment both services share.
        formatter = JsonFormatter(os.environ.get("PROJECT_ID", ""))
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log.handlers:  # no access log (the default): nothing to write
            return
        # Gunicorn writes the line after the app has returned: restore the request's trace.
        with request_trace(environ):
            super().access(resp, req, environ, request_time)
