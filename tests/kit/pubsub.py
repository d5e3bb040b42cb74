"""Raw Pub/Sub calls on a gRPC channel, as the services make them: no client-library retries."""

import queue
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from google.pubsub_v1.types import (
    PublishRequest,
    PublishResponse,
    PubsubMessage,
    StreamingPullRequest,
    StreamingPullResponse,
)

from devstack.pubsub import emulator_clients

PUBLISH = "/google.pubsub.v1.Publisher/Publish"
STREAMING_PULL = "/google.pubsub.v1.Subscriber/StreamingPull"
_Publish, _Published, _Message = PublishRequest.pb(), PublishResponse.pb(), PubsubMessage.pb()
_Pull, _Pulled = StreamingPullRequest.pb(), StreamingPullResponse.pb()


@dataclass(frozen=True)
class Names:
    topic: str
    subscription: str


@contextmanager
def topic_and_subscription(address: str, project: str, ack_deadline_s: int = 10) -> Iterator[Names]:
    """Create a topic with one pull subscription on the emulator; delete both afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = Names(
        f"projects/{project}/topics/proxy-{tag}", f"projects/{project}/subscriptions/proxy-{tag}"
    )
    with emulator_clients(address) as (publisher, subscriber):
        publisher.create_topic(request={"name": names.topic}, timeout=10)
        subscriber.create_subscription(
            request={
                "name": names.subscription,
                "topic": names.topic,
                "ack_deadline_seconds": ack_deadline_s,
            },
            timeout=10,
        )
        try:
            yield names
        finally:
            subscriber.delete_subscription(request={"subscription": names.subscription})
            publisher.delete_topic(request={"topic": names.topic})


def publish(channel: grpc.Channel, topic: str, data: bytes, timeout_s: float = 10.0) -> str:
    """Publish one message in one RPC; raise grpc.RpcError as the service would see it."""
    rpc = channel.unary_unary(
        PUBLISH,
        request_serializer=_Publish.SerializeToString,
        response_deserializer=_Published.FromString,
    )
    response = rpc(
        _Publish(topic=topic, messages=[_Message(data=data)]),
        timeout=timeout_s,
        metadata=[("x-goog-request-params", f"topic={topic}")],
    )
    return str(response.message_ids[0])


def streaming_pull(channel: grpc.Channel, subscription: str, client_id: str = "") -> "Stream":
    return Stream(channel, subscription, client_id)


class Stream:
    """One StreamingPull: iterate its responses; `ack` sends acks on it; `close` half-closes."""

    def __init__(self, channel: grpc.Channel, subscription: str, client_id: str) -> None:
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._requests.put(
            _Pull(subscription=subscription, stream_ack_deadline_seconds=10, client_id=client_id)
        )
        rpc = channel.stream_stream(
            STREAMING_PULL,
            request_serializer=_Pull.SerializeToString,
            response_deserializer=_Pulled.FromString,
        )
        self.call = rpc(iter(self._requests.get, None))

    def __iter__(self) -> Iterator[object]:
        return iter(self.call)

    def ack(self, ack_ids: list[str]) -> None:
        self._requests.put(_Pull(ack_ids=ack_ids))

    def close(self) -> None:
        self._requests.put(None)
