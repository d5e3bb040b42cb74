"""HTTP edge: every route of the backend is listed in `register`, below.

`POST /estimate` is the hot path: a plain WSGI handler in front of Flask, because Flask's
request context, routing and response objects would cost several times the estimate itself
(docs/benchmarks.md). The other routes are Flask views. Errors have one shape either way
(errors.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES

from ride_stream.tracing import RIDE_ID as RIDE_SPAN_ATTRIBUTE
from ride_stream.tracing import Tracing, message_attributes, messaging

from .coarse import CoarseEstimator
from .errors import ApiError, abort_json, error_json
from .listener import ResultListener
from .publisher import RidePublisher, StreamUnavailable
from .ride_store import RideConflict, RideStore, StoreUnavailable
from .rides import InvalidRide, Ride, parse_ride

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .recorder import Recorder

log = logging.getLogger(__name__)
OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")
# The rider's page, its script and style, and the TLC zone table it builds its choosers from.
STATIC = Path(__file__).with_name("static")
# The page must work behind Cloud Run with nothing else deployed and no internet: the browser
# refuses any script, style, font or call from another origin, and framing by one.
PAGE_POLICY = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


def register(app: Flask, runtime: Runtime, max_body_bytes: int) -> None:
    """Serve every route of the backend from `app`."""
    app.extensions["backend"] = runtime
    app.add_url_rule("/", view_func=rider_page, methods=["GET"])
    app.add_url_rule("/static/<name>", view_func=static_file, methods=["GET"])
    app.add_url_rule("/rides", view_func=confirm, methods=["POST"])
    app.add_url_rule("/rides/<ride_id>", view_func=lookup, methods=["GET"])
    app.add_url_rule("/healthz", view_func=healthz, methods=["GET"])
    app.add_url_rule("/readyz", view_func=readyz, methods=["GET"])
    app.add_url_rule("/openapi.yaml", view_func=openapi, methods=["GET"])
    app.wsgi_app = EstimateRoute(  # type: ignore[method-assign]
        "/estimate", app.wsgi_app, runtime, max_body_bytes
    )


@dataclass(frozen=True)
class Runtime:
    """What the routes work with, built once per worker by the factory."""

    estimator: CoarseEstimator
    publisher: RidePublisher
    listener: ResultListener
    rides: RideStore  # where rides are taken and looked up: this process's, or every instance's
    recorder: Recorder | None  # writes every result to the shared store, when there is one
    result_timeout_s: float
    tracing: Tracing = field(default_factory=lambda: Tracing("backend"))

    def coarse(self, ride: Ride) -> float:
        """Return the coarse duration of a ride, in minutes."""
        return self.estimator.estimate(
            ride.pickup_zone, ride.dropoff_zone, ride.trip_distance, ride.local_datetime
        )

    def close(self) -> None:
        self.listener.close()
        if self.recorder is not None:
            self.recorder.close()


def runtime() -> Runtime:
    return current_app.extensions["backend"]  # type: ignore[no-any-return]


def ride_from(payload: Any) -> Ride:
    """Validate a decoded request body as a ride, or raise the 400 or 422 that says why."""
    if payload is None:
        abort_json(400, "the body must be a JSON object")
    try:
        return parse_ride(payload, datetime.now(UTC))
    except InvalidRide as err:
        abort_json(422, "invalid ride", fields=err.fields)


class EstimateRoute:
    """`POST /estimate` as a plain WSGI handler; every other path goes on to `fallback`.

    It reads the body as Flask's `request.get_json(silent=True)` would (JSON media types only,
    at most `max_body_bytes`), so it answers what a Flask view would, errors included.
    """

    def __init__(
        self, path: str, fallback: WSGIApplication, runtime: Runtime, max_body_bytes: int
    ) -> None:
        self.path = path
        self.fallback = fallback
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path:
            return self.fallback(environ, start_response)
        try:
            status, body = 200, self.estimate(environ)
        except (ApiError, MethodNotAllowed, RequestEntityTooLarge) as err:
            status, body = err.code or 500, error_json(err)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", headers)
        return [body]

    def estimate(self, environ: WSGIEnvironment) -> bytes:
        """Answer at once with the coarse duration; nothing is published."""
        if environ.get("REQUEST_METHOD") != "POST":
            raise MethodNotAllowed(valid_methods=["POST"])
        ride = ride_from(self.json_body(environ))
        duration = self.runtime.coarse(ride)
        return f"{json.dumps({'duration_coarse': duration}, separators=(',', ':'))}\n".encode()

    def json_body(self, environ: WSGIEnvironment) -> Any:
        """The decoded JSON body, None when it is not JSON; 413 when longer than the limit."""
        if not is_json(environ.get("CONTENT_TYPE", "")):
            return None
        stream, length = environ["wsgi.input"], environ.get("CONTENT_LENGTH", "")
        if length.isdigit():
            if int(length) > self.max_body_bytes:
                raise RequestEntityTooLarge()
            body = stream.read(int(length))
        else:  # chunked: read one byte past the limit to see it
            body = stream.read(self.max_body_bytes + 1)
            if len(body) > self.max_body_bytes:
                raise RequestEntityTooLarge()
        try:
            return json.loads(body)
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError: nested
        # deeper than the decoder allows. Neither is a ride.
        except (ValueError, RecursionError):
            return None


def is_json(content_type: str) -> bool:
    """The media types Flask's `get_json` reads: application/json and application/*+json."""
    mimetype = content_type.partition(";")[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def confirm() -> tuple[Response, int]:
    """Publish a confirmed ride and wait, bounded, for its accurate duration."""
    rt = runtime()
    with rt.tracing.server(request.environ, "POST /rides") as span:
        status = 500
        try:
            body, status = confirm_ride(rt, span)
            return jsonify(body), status
        except HTTPException as err:
            status = err.code or 500
            raise
        finally:
            if span.is_recording():
                span.set_attributes(
                    {
                        "http.request.method": "POST",
                        "http.route": "/rides",
                        "http.response.status_code": status,
                    }
                )


def confirm_ride(rt: Runtime, span: Any) -> tuple[dict[str, object], int]:
    """The answer to one confirmation: 200 with the final duration, 202 without it."""
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the JSON decoder allows: not a ride either
        payload = None
    ride = ride_from(payload)
    ride_id = ride.ride_id or uuid.uuid4().hex
    if span.is_recording():
        span.set_attribute(RIDE_SPAN_ATTRIBUTE, ride_id)
    message = ride.message(ride_id)
    coarse = rt.coarse(ride)
    try:
        with rt.tracing.internal("claim ride"):
            record, must_publish = rt.rides.claim(
                ride_id, hashlib.sha256(message).digest(), coarse, message
            )
    except RideConflict as err:
        abort_json(409, str(err), extra={"ride_id": ride_id})
    except StoreUnavailable as err:
        log.error("ride not taken", extra={"ride_id": ride_id, "error": err.reason})
        abort_json(
            503,
            "the ride store is unavailable; the coarse duration stands",
            extra={"ride_id": ride_id, "duration_coarse": coarse},
        )
    if must_publish:
        rt.listener.ensure_open()  # after a freeze, the stream that will carry the result
        try:
            publish_ride(rt, message, ride_id)
        except StreamUnavailable as err:
            log.error("ride not published", extra={"ride_id": ride_id, "error": str(err)})
            rt.rides.release(ride_id)
            abort_json(
                503,
                "the prediction stream is unavailable; the coarse duration stands",
                extra={"ride_id": ride_id, "duration_coarse": record.duration_coarse},
            )
        # Config keeps this wait below gunicorn's graceful timeout: a worker told to stop
        # answers every waiting confirmation before it exits.
        record.done.wait(rt.result_timeout_s)
    elif record.duration_final is None:  # taken, and published, elsewhere or earlier
        record = rt.rides.follow(record, rt.result_timeout_s)
    if record.duration_final is None:
        log.warning("no result in time: answered pending", extra={"ride_id": ride_id})
        return record.as_json(), 202
    return record.as_json(), 200


def publish_ride(rt: Runtime, message: bytes, ride_id: str) -> None:
    """Publish the ride in a span of its own, whose context the message carries."""
    topic = rt.publisher.topic_name
    with rt.tracing.producer(f"{topic} publish") as span:
        message_id = rt.publisher.publish(
            message, ride_id=ride_id, reply_to=rt.listener.reply_to, trace=message_attributes(span)
        )
        if span.is_recording():
            span.set_attributes(
                messaging(topic, "send", message_id) | {RIDE_SPAN_ATTRIBUTE: ride_id}
            )
        log.debug("ride published", extra={"ride_id": ride_id, "message_id": message_id})


def lookup(ride_id: str) -> Response:
    """Return what is known of a ride: by every instance with a shared store."""
    try:
        record = runtime().rides.get(ride_id)
    except StoreUnavailable as err:
        abort_json(503, f"the ride store is unavailable: {err.reason}", extra={"ride_id": ride_id})
    if record is None:
        abort_json(404, f"no ride {ride_id!r} was taken", extra={"ride_id": ride_id})
    return jsonify(record.as_json())


def healthz() -> Response:
    return jsonify(status="ok")


def readyz() -> tuple[Response, int]:
    rt = runtime()
    rt.listener.ensure_open()  # after a freeze, report the reopened stream, not the lost one
    store_problem = rt.rides.problem()
    checks = {
        "listener": rt.listener.running,
        "publisher": rt.publisher.healthy,
        "store": store_problem is None,
    }
    if rt.recorder is not None:
        rt.recorder.ensure_open()  # the same for the recorder's stream
        checks["recorder"] = rt.recorder.running
    ready = all(checks.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
        "reply_to": rt.listener.reply_to,
    }
    # Why not: the listener's refusal that retrying will not fix (IAM, the filter), the ride
    # store's failure, the recorder's stopped stream.
    reasons = [rt.listener.problem, store_problem, rt.recorder and rt.recorder.problem]
    if any(reasons):
        body["reason"] = "; ".join(r for r in reasons if r)
    return jsonify(body), 200 if ready else 503


def rider_page() -> Response:
    """Serve the rider's page, allowed to load and call nothing but this origin."""
    response = static_file("index.html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


def static_file(name: str) -> Response:
    """Serve one file of static/ by name: no subfolders, so no path leads out of it."""
    path = STATIC / name
    if name.startswith(".") or not path.is_file():
        abort_json(404, f"no file {name!r}")
    # Read whole, as the OpenAPI file is: the largest is the 12 kB zone table.
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = Response(path.read_bytes(), mimetype=mimetype)
    response.headers["Cache-Control"] = "no-cache"  # revalidated: a deploy shows at once
    response.add_etag()
    response.make_conditional(request)  # 304 when the browser's copy is current
    return response


def openapi() -> Response:
    """Serve the OpenAPI description of this API."""
    # Read whole, not streamed with send_file: nothing is left open if a client goes away.
    return Response(OPENAPI_PATH.read_bytes(), mimetype="application/yaml")
