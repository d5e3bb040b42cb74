"""The Pub/Sub push envelope: what a push request body holds."""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime

from .errors import PermanentError


@dataclass(frozen=True)
class PushMessage:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    subscription: str
    publish_time: datetime | None = None  # when Pub/Sub accepted the message, if the envelope says


# RFC 3339 as Pub/Sub writes it, with up to nanoseconds; datetime keeps microseconds.
_RFC3339 = re.compile(r"^(?P<base>[^.]+)(?:\.(?P<frac>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)$")


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
        publish_time=_timestamp(message.get("publishTime") or message.get("publish_time")),
    )


def _timestamp(value: object) -> datetime | None:
    """Read an RFC 3339 timestamp; None when absent or unreadable (it only fills a gap)."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    fraction = (match["frac"] or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    try:
        return datetime.fromisoformat(f"{match['base']}.{fraction}{zone}")
    except ValueError:
        return None
