"""Failures of a push delivery, split by what Pub/Sub should do about them."""


class PermanentError(Exception):
    """The message can never succeed: forward it to the dead-letter topic and ack."""

    def __init__(self, reason: str, detail: str, payload: bytes) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.payload = payload


class TransientError(Exception):
    """The message may succeed later: answer 503 so Pub/Sub redelivers it."""
