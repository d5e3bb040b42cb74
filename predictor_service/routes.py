"""HTTP edge: every route of the predictor, in one table of plain WSGI handlers.

Push deliveries are all the traffic a predictor gets, and their answer is a bare status:
Flask's request context, routing and response objects would cost about as much CPU as the
prediction and the publish together. Flask holds the app (the factory's product and its test
client); this table is what answers every request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING

from ride_stream.messages import (
    REPLY_TO,
    RIDE_ID,
    InvalidMessage,
    RideMessage,
    decode_ride,
    encode_result,
)
from ride_stream.tracing import RIDE_ID as RIDE_ID_SPAN
from ride_stream.tracing import Tracing, message_attributes, messaging

from .envelope import PushMessage, parse_envelope
from .errors import PermanentError, TransientError
from .model import ServingModel
from .publisher import ResultPublisher
from .push_auth import PushAuthError, PushTokenVerifier
from .shadow import ShadowRoute

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)
Handler = Callable[["WSGIEnvironment", "StartResponse"], Iterable[bytes]]


@dataclass(frozen=True)
class Runtime:
    model: ServingModel
    publisher: ResultPublisher
    push_verifier: PushTokenVerifier | None = None
    tracing: Tracing = field(default_factory=lambda: Tracing("predictor"))
    shadow: ShadowRoute | None = None


class Routes:
    """The predictor's WSGI callable: look the request up in `table`, answer with its handler."""

    def __init__(self, runtime: Runtime, max_body_bytes: int) -> None:
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes
        self.table: dict[tuple[str, str], Handler] = {
            ("POST", "/"): self.push,  # Pub/Sub's push deliveries
            ("GET", "/healthz"): self.healthz,  # liveness
            ("GET", "/readyz"): self.readyz,  # Cloud Run's startup probe
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        handler = self.table.get((environ.get("REQUEST_METHOD", ""), path))
        if handler is not None:
            return handler(environ, start_response)
        allowed = sorted(method for method, known in self.table if known == path)
        if allowed:
            return respond(start_response, 405, headers=[("Allow", ", ".join(allowed))])
        return respond(start_response, 404)

    def push(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one push delivery with a bare status: 204 acks, 503 and 500 redeliver."""
        return respond(start_response, self.answer(environ))

    def answer(self, environ: WSGIEnvironment) -> int:
        """The status for one push delivery: 204 acks, 503 and 500 ask for redelivery."""
        try:
            body = read_body(environ, self.max_body_bytes)
            if body is None:
                return 413
            return push(self.runtime, body, environ.get("HTTP_AUTHORIZATION"), environ)
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

    def healthz(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return respond(start_response, 200, {"status": "ok"})

    def readyz(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # The factory loads the model before the worker accepts connections: serving is ready.
        ready = {"status": "ready", "model_version": self.runtime.model.version}
        return respond(start_response, 200, ready)


STATUS_LINES = {int(code): f"{code.value} {code.phrase}" for code in HTTPStatus}


def respond(
    start_response: StartResponse,
    status: int,
    body: dict[str, str] | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """Start the response; a 204 has no body and no length, the others say their length."""
    if status == 204:
        start_response(STATUS_LINES[status], headers or [])
        return []
    data = b"" if body is None else json.dumps(body, sort_keys=True).encode() + b"\n"
    headers = [*(headers or []), ("Content-Length", str(len(data)))]
    if body is not None:
        headers.append(("Content-Type", "application/json"))
    start_response(STATUS_LINES[status], headers)
    return [data]


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


def push(
    rt: Runtime, body: bytes, authorization: str | None, environ: WSGIEnvironment | None = None
) -> int:
    """Predict one pushed ride and publish the result; bad input is dead-lettered and acked."""
    if rt.push_verifier is not None:
        rt.push_verifier.verify(authorization)
    try:
        message = parse_envelope(body)
    except PermanentError as err:
        dead_letter(rt.publisher, err, None)
        return 204
    subscription = message.subscription.rpartition("/")[2] or "push"
    # A shadow push is answered, and fails, on the shadow topic: never to a rider.
    shadow = rt.shadow if rt.shadow and rt.shadow.owns(message.subscription) else None
    publisher = shadow.publisher if shadow else rt.publisher
    # The ride's trace, from the message; a message without one continues the push request's.
    with rt.tracing.consumer(message.attributes, f"{subscription} subscribe", environ) as span:
        try:
            # A ride without its own pickup time was requested when it was published.
            ride = decode_ride(message.data, message.publish_time or datetime.now(UTC))
        except InvalidMessage as err:
            failure = PermanentError(err.reason, err.detail, message.data)
            dead_letter(publisher, failure, message, shadow=shadow is not None)
            return 204
        if span.is_recording():
            span.set_attributes(
                messaging(subscription, "process", message.message_id)
                | {RIDE_ID_SPAN: ride.ride_id}
            )
        started = time.perf_counter()
        with rt.tracing.internal("predict") as predicting:
            duration = rt.model.duration(
                ride.pickup_zone, ride.dropoff_zone, ride.trip_distance, ride.pickup_datetime
            )
            if predicting.is_recording():
                predicting.set_attribute("model_version", rt.model.version)
        predict_ms = (time.perf_counter() - started) * 1000
        publish_result(rt, ride, message, duration, publisher)
        # One line a result: the log-based metrics of results by model_version and of the
        # prediction's latency read it (deploy/monitoring.sh); a shadow's has its own words.
        log.info(
            "shadow result published" if shadow else "result published",
            extra={
                "ride_id": ride.ride_id,
                "model_version": rt.model.version,
                "predict_ms": round(predict_ms, 3),
            },
        )
    return 204


def publish_result(
    rt: Runtime,
    ride: RideMessage,
    message: PushMessage,
    duration: float,
    publisher: ResultPublisher | None = None,
) -> None:
    """Publish the ride's result in a span of its own, whose context the result carries back."""
    publisher = publisher or rt.publisher
    topic = publisher.results_topic_name
    with rt.tracing.producer(f"{topic} publish") as span:
        attributes = {RIDE_ID: ride.ride_id} | message_attributes(span)
        # Only a rider's result names the backend waiting for it.
        if (reply_to := message.attributes.get(REPLY_TO)) and publisher is rt.publisher:
            attributes[REPLY_TO] = reply_to
        result = encode_result(ride.result_ride_id, duration, rt.model.version)
        message_id = publisher.publish_result(result, attributes)
        if span.is_recording():
            span.set_attributes(messaging(topic, "send", message_id) | {RIDE_ID_SPAN: ride.ride_id})


def dead_letter(
    publisher: ResultPublisher,
    err: PermanentError,
    message: PushMessage | None,
    *,
    shadow: bool = False,
) -> None:
    """Forward what could not be processed, with why, before it is acked."""
    attributes = dict(message.attributes) if message else {}
    attributes.update(reason=err.reason, error=err.detail)
    if message and message.message_id:
        attributes["source_message_id"] = message.message_id
    message_id = publisher.dead_letter(err.payload, attributes)
    log.warning(
        "shadow push failed" if shadow else "dead-lettered a push message",
        extra={"reason": err.reason, "error": err.detail[:200], "dead_letter_id": message_id},
    )
