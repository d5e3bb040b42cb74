"""Publish results and dead letters, and wait until Pub/Sub has them."""

import logging
from typing import Any, Protocol

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from ride_stream.group_commit import MAX_ATTRIBUTE_VALUE_BYTES, GroupCommitPublisher, cut_utf8

from .errors import TransientError

log = logging.getLogger(__name__)

# Pub/Sub caps a message at 10 MB, attributes included.
# https://cloud.google.com/pubsub/quotas#resource_limits
MAX_DEAD_LETTER_BYTES = 9 * 1024 * 1024


class PublisherClient(Protocol):
    def publish(
        self, topic: str, data: bytes, timeout: float | None = ..., **attrs: str
    ) -> Any: ...


def make_client(max_latency_s: float, timeout_s: float, max_in_flight: int) -> GroupCommitPublisher:
    """Create the gRPC client; call it in the worker, after gunicorn forks."""
    # Every request waits for its own publish, so a batching delay would be added to each one:
    # group commit batches what arrives while every RPC slot is busy and waits for nothing else.
    return GroupCommitPublisher(
        pubsub_v1.PublisherClient(), timeout_s, linger_s=max_latency_s, max_in_flight=max_in_flight
    )


class ResultPublisher:
    """Send predictions to the results topic and bad messages to the dead-letter topic."""

    def __init__(
        self,
        client: PublisherClient,
        project_id: str,
        results_topic: str,
        dead_letter_topic: str,
        timeout_s: float,
    ) -> None:
        self._client = client
        self.results_topic_name = results_topic
        self._results = f"projects/{project_id}/topics/{results_topic}"
        self._dead_letters = f"projects/{project_id}/topics/{dead_letter_topic}"
        self._timeout_s = timeout_s

    def publish_result(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish a prediction and return its message id once Pub/Sub confirms it."""
        return self._publish(self._results, data, attributes)

    def dead_letter(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish an unprocessable message with the reason in its attributes."""
        # Pub/Sub counts an attribute value's bytes: cut by UTF-8 bytes, never inside a character.
        attributes = {k: cut_utf8(v, MAX_ATTRIBUTE_VALUE_BYTES) for k, v in attributes.items()}
        if len(data) > MAX_DEAD_LETTER_BYTES:
            attributes["truncated_from_bytes"] = str(len(data))
            data = data[:MAX_DEAD_LETTER_BYTES]
        return self._publish(self._dead_letters, data, attributes)

    def _publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        try:
            # The client retries within `timeout`; the extra second covers a slow last attempt.
            future = self._client.publish(topic, data, timeout=self._timeout_s, **attributes)
            return str(future.result(self._timeout_s + 1.0))
        except Exception as err:  # the future raises gRPC, timeout and client errors alike
            raise TransientError(f"publish to {topic} failed: {type(err).__name__}: {err}") from err
