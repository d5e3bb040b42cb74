"""The Pub/Sub push envelope in, the result message out."""

import base64
import binascii
import json
from dataclasses import dataclass

from .errors import PermanentError


@dataclass(frozen=True)
class PushMessage:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    subscription: str


def parse_envelope(body: bytes) -> PushMessage:
    """Decode a push request body or raise PermanentError naming what is wrong with it."""
    try:
        envelope = json.loads(body)
    # RecursionError: JSON nested deeper than the decoder allows is no ride either, and
    # must not become a 500 that Pub/Sub would redeliver.
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise PermanentError("body-not-json", str(err), body) from err
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        raise PermanentError("envelope-without-message", "no 'message' object", body)
    raw = message.get("data", "")
    attributes = message.get("attributes") or {}
    if not isinstance(raw, str) or not isinstance(attributes, dict):
        raise PermanentError("envelope-without-message", "malformed 'message' object", body)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as err:
        raise PermanentError("data-not-base64", str(err), raw.encode()) from err
    return PushMessage(
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        data=data,
        attributes={str(k): str(v) for k, v in attributes.items()},
        subscription=str(envelope.get("subscription", "")),
    )


def encode_result(ride_id: str, duration_final: float, model_version: str) -> bytes:
    """Serialise the prediction the backend waits for."""
    return json.dumps(
        {"ride_id": ride_id, "duration_final": duration_final, "model_version": model_version}
    ).encode()
