"""`python -m devstack.timeline [RIDE]`: one ride's timeline, hop by hop, from `make run`'s spans.

Each hop with its offset from the request's arrival and its duration: request received,
claimed, published, push received, predicted, result published, backend woken, answered. The
latest confirmed ride when none is named. The spans are those the stack's services appended to
their span file (ride_stream.span_file); Cloud Trace shows the same spans when deployed.
"""

import argparse
import sys
from collections.abc import Iterable
from typing import Any

from ride_stream.span_file import read_spans
from ride_stream.tracing import RIDE_ID

from .stack import Settings

# (service, span kind, name or None for any name) -> the hop a span is.
HOPS = {
    ("backend", "SERVER", "POST /rides"): "request received",
    ("backend", "INTERNAL", "claim ride"): "claimed",
    ("backend", "PRODUCER", None): "published",
    ("predictor", "CONSUMER", None): "push received",
    ("predictor", "INTERNAL", "predict"): "predicted",
    ("predictor", "PRODUCER", None): "result published",
    ("backend", "CONSUMER", None): "backend woken",
}


def hop(span: dict[str, Any]) -> str:
    """The hop a span stands for; its own name when it is none of them."""
    service, kind, name = span["service"], span["kind"], span["name"]
    return HOPS.get((service, kind, name)) or HOPS.get((service, kind, None)) or name


def ride_spans(spans: list[dict[str, Any]], ride_id: str | None) -> list[dict[str, Any]]:
    """The spans of the ride's latest trace (the latest ride's without `ride_id`), by start."""
    about = [s for s in spans if s["attributes"].get(RIDE_ID) is not None]
    if ride_id is None:
        requests = [s for s in about if s["kind"] == "SERVER"]
        if not requests:
            return []
        ride_id = str(max(requests, key=lambda s: s["start"])["attributes"][RIDE_ID])
    about = [s for s in about if str(s["attributes"][RIDE_ID]) == ride_id]
    if not about:
        return []
    trace_id = max(about, key=lambda s: s["start"])["trace_id"]
    chosen = {s["span_id"] for s in about if s["trace_id"] == trace_id}
    # The ride's own spans and their children that name no ride (claim, predict).
    kept = [
        s
        for s in spans
        if s["span_id"] in chosen
        or (s["parent_id"] in chosen and s["attributes"].get(RIDE_ID) is None)
    ]
    return sorted(kept, key=lambda s: s["start"])


def detail(span: dict[str, Any]) -> str:
    attributes = span["attributes"]
    if span["kind"] == "SERVER":
        return span["name"]
    keys = ("messaging.destination.name", "model_version")
    parts = [str(attributes[key]) for key in keys if key in attributes]
    if "messaging.message.id" in attributes:
        parts.append(f"message {attributes['messaging.message.id']}")
    if span["status"] == "ERROR":
        parts.append("ERROR")
    return ", ".join(parts)


def timeline(spans: list[dict[str, Any]]) -> Iterable[str]:
    """The lines printed for one ride's spans."""
    origin = spans[0]["start"]
    request = next((s for s in spans if s["kind"] == "SERVER"), None)
    ride = spans[0]["attributes"].get(RIDE_ID)
    total = (request["end"] - request["start"]) / 1e6 if request else None
    status = request["attributes"].get("http.response.status_code", "?") if request else None
    head = f"ride {ride}  trace {spans[0]['trace_id']}"
    yield head + (f"  answered {status} in {total:.1f} ms" if total is not None else "")
    yield f"{'offset':>10} {'duration':>10}  {'service':<10} {'hop':<18} detail"

    def row(offset_ns: int, duration: str, service: str, name: str, text: str) -> str:
        return (
            f"{(offset_ns - origin) / 1e6:>7.1f} ms {duration:>10}  {service:<10} {name:<18} {text}"
        )

    for span in spans:
        duration = f"{(span['end'] - span['start']) / 1e6:.1f} ms"
        yield row(span["start"], duration, span["service"], hop(span), detail(span))
    if request is not None:
        yield row(request["end"], "", "backend", "answered", str(status))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.timeline", description=__doc__)
    parser.add_argument("ride", nargs="?", help="the ride_id (default: the latest ride)")
    parser.add_argument("--file", default=str(Settings().span_file), help="the span file")
    args = parser.parse_args(argv)
    spans = ride_spans(read_spans(args.file), args.ride)
    if not spans:
        what = f"ride {args.ride!r}" if args.ride else "any ride"
        sys.stderr.write(
            f"no spans of {what} in {args.file}: is `make run` up, with TRACE_EXPORTER=local"
            " (its default), and was the ride confirmed less than a few MB of spans ago?\n"
        )
        return 1
    sys.stdout.write("\n".join(timeline(spans)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
