"""Publish confirmed rides to the rides topic and wait until Pub/Sub has each one."""

from concurrent.futures import Future
from typing import Any

from google.pubsub_v1 import PublisherClient

from ride_stream.group_commit import GroupCommitPublisher, PublishRefused


class StreamUnavailable(RuntimeError):
    """Pub/Sub did not confirm the publish in time."""


def make_client(max_latency_s: float, timeout_s: float, max_in_flight: int) -> GroupCommitPublisher:
    """Create the gRPC client; call it in the worker, after gunicorn forks."""
    # Each request waits for its own publish, so a batching delay would be added to every
    # confirmation: group commit batches what arrives while every RPC slot is busy, no timer.
    # The generated client, not google.cloud.pubsub_v1's: it owns the channel (emulator or
    # Google's, with credentials); Publish is called on that channel.
    return GroupCommitPublisher(
        PublisherClient(), timeout_s, max_latency_s, max_in_flight=max_in_flight
    )


class RidePublisher:
    """Publish a ride and block until Pub/Sub confirms it, or fail within a bound."""

    def __init__(self, client: Any, project_id: str, topic: str, timeout_s: float) -> None:
        self._client = client
        self.topic_name = topic
        self._topic = f"projects/{project_id}/topics/{topic}"
        self._timeout_s = timeout_s
        self.healthy = True

    def publish(
        self, data: bytes, ride_id: str, reply_to: str, trace: dict[str, str] | None = None
    ) -> str:
        """Return the message id; raise StreamUnavailable if it is not confirmed in time.

        `trace` holds the attribute that carries the publish span's context.
        """
        return self._confirmed(self._send(data, ride_id, reply_to, trace or {}))

    def publish_all(self, rides: list[tuple[bytes, str]], reply_to: str) -> int:
        """Publish (message, ride_id) pairs together; return how many were not confirmed."""
        futures = [self._send(data, ride_id, reply_to) for data, ride_id in rides]
        failed = 0
        for future in futures:
            try:
                self._confirmed(future)
            except StreamUnavailable:
                failed += 1
        return failed

    def _send(
        self, data: bytes, ride_id: str, reply_to: str, trace: dict[str, str] | None = None
    ) -> Future:
        # The client retries within `timeout`.
        return self._client.publish(  # type: ignore[no-any-return]
            self._topic,
            data,
            ride_id=ride_id,
            reply_to=reply_to,
            timeout=self._timeout_s,
            **(trace or {}),
        )

    def _confirmed(self, future: Future) -> str:
        try:
            # The extra second covers a slow last attempt.
            message_id = str(future.result(timeout=self._timeout_s + 1.0))
        except PublishRefused as err:  # this message, not the stream: the stream stays healthy
            raise StreamUnavailable(f"{type(err).__name__}: {err}") from err
        except Exception as err:  # gRPC, timeout and client errors all mean "not confirmed"
            self.healthy = False
            raise StreamUnavailable(f"{type(err).__name__}: {err}") from err
        self.healthy = True
        return message_id
