"""HTTP edge: the push endpoint (plain WSGI, the hot path) and the health probes (Flask)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, jsonify

from .envelope import PushMessage, encode_result, parse_envelope
from .errors import PermanentError, TransientError
from .model import LoadedModel
from .publisher import ResultPublisher
from .push_auth import PushAuthError, PushTokenVerifier
from .rides import decode_ride

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)
bp = Blueprint("predictor", __name__)


@dataclass(frozen=True)
class Runtime:
    model: LoadedModel
    publisher: ResultPublisher
    push_verifier: PushTokenVerifier | None = None


def runtime() -> Runtime:
    return current_app.extensions["predictor"]  # type: ignore[no-any-return]


class PushRoute:
    """`POST /` as a plain WSGI handler in front of the Flask app, which serves the rest.

    Push deliveries are all the traffic a predictor gets, and their answer is a bare status:
    Flask's request context, routing and response objects cost about as much CPU as the
    prediction and the publish together, so this route does without them.
    """

    def __init__(self, app: Flask, runtime: Runtime, max_body_bytes: int) -> None:
        self.fallback = app.wsgi_app
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/" or environ.get("REQUEST_METHOD") != "POST":
            return self.fallback(environ, start_response)
        status = self.answer(environ)
        # A 204 carries no body and no length; the others say their empty body is empty.
        start_response(STATUS_LINES[status], [] if status == 204 else [("Content-Length", "0")])
        return []

    def answer(self, environ: WSGIEnvironment) -> int:
        """The status for one push delivery: 204 acks, 503 and 500 ask for redelivery."""
        try:
            body = read_body(environ, self.max_body_bytes)
            if body is None:
                return 413
            return push(self.runtime, body, environ.get("HTTP_AUTHORIZATION"))
        except PushAuthError as err:
            # 401 no or bad token, 403 another sender, 503 Google's certificates unavailable.
            log.warning("push refused", extra={"status": err.status, "error": str(err)})
            return err.status
        except TransientError as err:
            log.error("push not processed, asking for redelivery", extra={"error": str(err)})
            return 503
        except Exception:
            log.exception("push failed, asking for redelivery")
            return 500


STATUS_LINES = {
    code: f"{code} {HTTPStatus(code).phrase}" for code in (204, 401, 403, 413, 500, 503)
}


def read_body(environ: WSGIEnvironment, limit: int) -> bytes | None:
    """The request body, or None when it is longer than `limit` (then it is not read)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        if int(length) > limit:
            return None
        return stream.read(int(length))  # type: ignore[no-any-return]
    body = stream.read(limit + 1)  # chunked: read one byte past the limit to see it
    return None if len(body) > limit else body


def push(rt: Runtime, body: bytes, authorization: str | None) -> int:
    """Predict one pushed ride and publish the result; bad input is dead-lettered and acked."""
    if rt.push_verifier is not None:
        rt.push_verifier.verify(authorization)
    message = None
    try:
        message = parse_envelope(body)
        ride = decode_ride(message.data)
    except PermanentError as err:
        dead_letter(rt.publisher, err, message)
        return 204
    duration = rt.model.duration(
        ride.pickup_zone, ride.dropoff_zone, ride.trip_distance, ride.pickup_datetime
    )
    attributes = {"ride_id": ride.ride_id}
    if reply_to := message.attributes.get("reply_to"):
        attributes["reply_to"] = reply_to
    rt.publisher.publish_result(encode_result(ride.ride_id, duration, rt.model.version), attributes)
    return 204


def dead_letter(
    publisher: ResultPublisher, err: PermanentError, message: PushMessage | None
) -> None:
    """Forward what could not be processed, with why, before it is acked."""
    attributes = dict(message.attributes) if message else {}
    attributes.update(reason=err.reason, error=err.detail)
    if message and message.message_id:
        attributes["source_message_id"] = message.message_id
    message_id = publisher.dead_letter(err.payload, attributes)
    log.warning(
        "dead-lettered a push message",
        extra={"reason": err.reason, "error": err.detail[:200], "dead_letter_id": message_id},
    )


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    # The factory loads the model before the worker accepts connections: serving means ready.
    return jsonify(status="ready", model_version=runtime().model.version)
