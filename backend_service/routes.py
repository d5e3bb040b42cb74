"""HTTP edge: estimate, confirm and look up rides, and the health probes."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from .coarse import CoarseEstimator
from .errors import abort_json
from .results import ResultStore, RideConflict, RideRecord
from .rides import InvalidRide, Ride, parse_ride
from .stream import ResultListener, RidePublisher, StreamUnavailable

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)
bp = Blueprint("backend", __name__)
# How often a waiting confirmation looks up from its ride to see whether the worker drains.
DRAIN_CHECK_S = 0.1
OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")


@dataclass(frozen=True)
class Runtime:
    estimator: CoarseEstimator
    publisher: RidePublisher
    listener: ResultListener
    store: ResultStore
    result_timeout_s: float
    draining: threading.Event = field(default_factory=threading.Event)

    def drain(self) -> None:
        """Make waiting confirmations answer 202 pending now: the worker is shutting down."""
        self.draining.set()

    def wait_for_result(self, record: RideRecord) -> None:
        """Wait for the ride's result, at most result_timeout_s and no longer than a drain."""
        deadline = time.monotonic() + self.result_timeout_s
        while not self.draining.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or record.done.wait(min(remaining, DRAIN_CHECK_S)):
                return

    def close(self) -> None:
        self.listener.close()


def runtime() -> Runtime:
    return current_app.extensions["backend"]  # type: ignore[no-any-return]


def read_ride() -> Ride:
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the JSON decoder allows: not a ride either
        payload = None
    if payload is None:
        abort_json(400, "the body must be a JSON object")
    try:
        return parse_ride(payload, datetime.now(UTC))
    except InvalidRide as err:
        abort_json(422, "invalid ride", fields=err.fields)


def coarse(rt: Runtime, ride: Ride) -> float:
    return rt.estimator.estimate(
        ride.pickup_zone, ride.dropoff_zone, ride.trip_distance, ride.local_datetime
    )


@bp.post("/estimate")
def estimate() -> Response:
    """Answer at once with the coarse duration; nothing is published."""
    return jsonify(duration_coarse=coarse(runtime(), read_ride()))


class EstimateRoute:
    """`POST /estimate` for well-formed rides as a plain WSGI handler in front of the Flask app.

    The coarse estimate is about 60 us of work; Flask's request context, routing and response
    objects added about 250 us to it. Anything this handler does not answer with a 200 (another
    route, a body that is not a JSON object, an invalid ride, no length, too long) goes on to the
    Flask route, with the body it read, so errors keep their one shape and their one code path.
    """

    def __init__(self, app: Flask, runtime: Runtime, max_body_bytes: int) -> None:
        self.fallback = app.wsgi_app
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") == "/estimate"
            and environ.get("REQUEST_METHOD") == "POST"
            and is_json(environ.get("CONTENT_TYPE", ""))
            and 0 < (length := content_length(environ)) <= self.max_body_bytes
        ):
            body = environ["wsgi.input"].read(length)
            answer = self.answer(body)
            if answer is not None:
                length_header = ("Content-Length", str(len(answer)))
                start_response("200 OK", [("Content-Type", "application/json"), length_header])
                return [answer]
            environ["wsgi.input"] = io.BytesIO(body)
        return self.fallback(environ, start_response)

    def answer(self, body: bytes) -> bytes | None:
        """The 200 body for a valid ride, byte for byte what `jsonify` writes; else None."""
        try:
            ride = parse_ride(json.loads(body), datetime.now(UTC))
        except (ValueError, RecursionError, InvalidRide):  # JSONDecodeError is a ValueError
            return None
        duration = coarse(self.runtime, ride)
        return f"{json.dumps({'duration_coarse': duration}, separators=(',', ':'))}\n".encode()


def is_json(content_type: str) -> bool:
    """The media types Flask's `get_json` reads: application/json and application/*+json."""
    mimetype = content_type.partition(";")[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def content_length(environ: WSGIEnvironment) -> int:
    """The declared body length; 0 when absent or unreadable (chunked bodies among them)."""
    value = environ.get("CONTENT_LENGTH", "")
    return int(value) if value.isdigit() else 0


@bp.post("/rides")
def confirm() -> tuple[Response, int]:
    """Publish a confirmed ride and wait, bounded, for its accurate duration."""
    rt, ride = runtime(), read_ride()
    ride_id = ride.ride_id or uuid.uuid4().hex
    message = ride.message(ride_id)
    try:
        record = rt.store.begin(ride_id, hashlib.sha256(message).digest(), coarse(rt, ride))
    except RideConflict as err:
        abort_json(409, str(err), extra={"ride_id": ride_id})
    if record.duration_final is None:
        try:
            rt.publisher.publish(message, ride_id=ride_id, reply_to=rt.listener.reply_to)
        except StreamUnavailable as err:
            log.error("ride not published", extra={"ride_id": ride_id, "error": str(err)})
            abort_json(
                503,
                "the prediction stream is unavailable; the coarse duration stands",
                extra={"ride_id": ride_id, "duration_coarse": record.duration_coarse},
            )
        rt.wait_for_result(record)
    return jsonify(record.as_json()), 200 if record.duration_final is not None else 202


@bp.get("/rides/<ride_id>")
def lookup(ride_id: str) -> Response:
    """Return what this process knows of a ride."""
    record = runtime().store.get(ride_id)
    if record is None:
        abort_json(404, f"no ride {ride_id!r} in this process")
    return jsonify(record.as_json())


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    rt = runtime()
    checks = {"listener": rt.listener.running, "publisher": rt.publisher.healthy}
    ready = all(checks.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
        "reply_to": rt.listener.reply_to,
    }
    return jsonify(body), 200 if ready else 503


@bp.get("/openapi.yaml")
def openapi() -> Response:
    """Serve the OpenAPI description of this API."""
    # Read whole, not streamed with send_file: nothing is left open if a client goes away.
    return Response(OPENAPI_PATH.read_bytes(), mimetype="application/yaml")
