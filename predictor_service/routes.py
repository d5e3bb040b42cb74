"""HTTP edge: the push endpoint and the health probes."""

import logging
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, jsonify, request

from .envelope import PushMessage, encode_result, parse_envelope
from .errors import PermanentError, TransientError
from .model import LoadedModel
from .publisher import ResultPublisher
from .push_auth import PushAuthError, PushTokenVerifier
from .rides import decode_ride

log = logging.getLogger(__name__)
bp = Blueprint("predictor", __name__)


@dataclass(frozen=True)
class Runtime:
    model: LoadedModel
    publisher: ResultPublisher
    push_verifier: PushTokenVerifier | None = None


def runtime() -> Runtime:
    return current_app.extensions["predictor"]  # type: ignore[no-any-return]


@bp.post("/")
def push() -> tuple[str, int]:
    """Predict one pushed ride and publish the result; 204 acks, 503 asks for redelivery."""
    rt = runtime()
    if rt.push_verifier is not None:
        rt.push_verifier.verify(request.headers.get("Authorization"))
    message = None
    try:
        message = parse_envelope(request.get_data())
        ride = decode_ride(message.data)
    except PermanentError as err:
        dead_letter(rt.publisher, err, message)
        return "", 204
    duration = rt.model.duration(
        ride.pickup_zone, ride.dropoff_zone, ride.trip_distance, ride.pickup_datetime
    )
    attributes = {"ride_id": ride.ride_id}
    if reply_to := message.attributes.get("reply_to"):
        attributes["reply_to"] = reply_to
    rt.publisher.publish_result(encode_result(ride.ride_id, duration, rt.model.version), attributes)
    return "", 204


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


@bp.errorhandler(PushAuthError)
def unauthenticated(err: PushAuthError) -> tuple[str, int]:
    # 401 no or bad token, 403 another sender, 503 Google's certificates could not be fetched.
    log.warning("push refused", extra={"status": err.status, "error": str(err)})
    return "", err.status


@bp.errorhandler(TransientError)
def transient(err: TransientError) -> tuple[str, int]:
    log.error("push not processed, asking for redelivery", extra={"error": str(err)})
    return "", 503


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    # The factory loads the model before the worker accepts connections: serving means ready.
    return jsonify(status="ready", model_version=runtime().model.version)
