"""Finished spans as JSON lines in one local file, the recent ones only: `make run`'s Cloud Trace.

Every process of the stack appends to the same file; `python -m devstack.timeline` reads it. A
lock file orders the writers, so a batch of lines is never split and the file is rotated once:
past `max_bytes` it becomes `<file>.1` (the one before is dropped), which keeps the disk used
under twice `max_bytes`.
"""

import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

MAX_BYTES = 8 * 1024 * 1024


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as the line written for it: ids in hex, times in ns since the epoch."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}" if ctx else "",
        "span_id": f"{ctx.span_id:016x}" if ctx else "",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name", ""),
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


class SpanFile(SpanExporter):
    """A span exporter that appends each batch to `path`, rotating it past `max_bytes`."""

    def __init__(self, path: str | Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans).encode()
        try:
            with open(f"{self.path}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if self.path.exists() and self.path.stat().st_size + len(lines) > self.max_bytes:
                    os.replace(self.path, f"{self.path}.1")
                with open(self.path, "ab") as out:
                    out.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is held open between batches."""


def read_spans(path: str | Path) -> list[dict[str, Any]]:
    """Every span kept in `path` and its rotated predecessor, oldest file first."""
    spans = []
    for name in (f"{path}.1", str(path)):
        try:
            with open(name, encoding="utf-8") as lines:
                for line in lines:
                    try:
                        spans.append(json.loads(line))
                    except ValueError:  # a line cut by a crash: the others still count
                        continue
        except FileNotFoundError:
            continue
    return spans
