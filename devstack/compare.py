"""Compare production and a shadowing candidate on the same rides, and print the report.

`python -m devstack.compare --project P [--emulator HOST:PORT] [--replay N]` subscribes to the
rides, results, dead-letter and shadow topics with subscriptions of its own, replays N rides of
the validation month (their actual durations give each model's RMSE) or watches live rides for
`--seconds`, prints the figures of devstack.comparison, and deletes its subscriptions.
"""

import argparse
import json
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from ride_stream.messages import RIDE_ID, decode_result

from .comparison import ACTUAL, Observed, figures, report
from .pubsub import emulator_clients


@dataclass(frozen=True)
class Topics:
    project: str
    rides: str = "ride-data-push"
    results: str = "ride-duration-pull"
    dead_letters: str = "ride-data-dead-letter"
    shadow: str = "ride-duration-shadow"


@contextmanager
def clients(emulator: str | None) -> Iterator[tuple[Any, Any]]:
    """Pub/Sub clients: the emulator's at `emulator`, else Google Cloud's."""
    if emulator:
        with emulator_clients(emulator) as pair:
            yield pair
        return
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    try:
        yield publisher, subscriber
    finally:
        publisher.stop()
        subscriber.close()


class Watch:
    """Subscriptions of the compare's own on the four topics; `pull` files what they carry."""

    KINDS = ("rides", "results", "dead_letters", "shadow")

    def __init__(self, subscriber: Any, topics: Topics) -> None:
        self.subscriber, self.topics = subscriber, topics
        suffix = uuid.uuid4().hex[:8]
        self.names = {
            kind: f"projects/{topics.project}/subscriptions/compare-{kind}-{suffix}"
            for kind in self.KINDS
        }
        self.seen = Observed()

    def create(self) -> None:
        for kind, name in self.names.items():
            topic = f"projects/{self.topics.project}/topics/{getattr(self.topics, kind)}"
            self.subscriber.create_subscription(
                request={"name": name, "topic": topic, "ack_deadline_seconds": 60}, timeout=30
            )

    def delete(self) -> None:
        for name in self.names.values():
            self.subscriber.delete_subscription(request={"subscription": name}, timeout=30)

    def pull(self) -> int:
        """Pull each subscription once; return how many messages came."""
        count = 0
        for kind, name in self.names.items():
            response = self.subscriber.pull(
                request={"subscription": name, "max_messages": 500}, timeout=10
            )
            for received in response.received_messages:
                self.file(kind, received.message)
            if ack_ids := [m.ack_id for m in response.received_messages]:
                self.subscriber.acknowledge(request={"subscription": name, "ack_ids": ack_ids})
            count += len(response.received_messages)
        return count

    def file(self, kind: str, message: Any) -> None:
        attributes, published_s = dict(message.attributes), message.publish_time.timestamp()
        ride_id = attributes.get(RIDE_ID, "")
        if kind == "rides":
            self.seen.ride_published_s[ride_id] = published_s
            if ACTUAL in attributes:
                self.seen.actual[ride_id] = float(attributes[ACTUAL])
        elif kind == "dead_letters":
            self.seen.production.failures += 1
        elif kind == "shadow" and "reason" in attributes:
            self.seen.candidate.failures += 1
        else:
            side = self.seen.production if kind == "results" else self.seen.candidate
            result = decode_result(message.data)
            side.add(ride_id, result.duration_final, result.model_version, published_s)

    def answered(self, ride_ids: set[str]) -> bool:
        return ride_ids <= set(self.seen.production.minutes) and ride_ids <= set(
            self.seen.candidate.minutes
        )


def compare(
    topics: Topics,
    emulator: str | None = None,
    replay: int = 0,
    rate: float = 20.0,
    seconds: float = 60.0,
    idle_s: float = 15.0,
) -> dict[str, float | int | str]:
    """Watch for `seconds` (replayed rides: until both answered them all, within `seconds`)."""
    with clients(emulator) as (publisher, subscriber), ExitStack() as cleanup:
        watch = Watch(subscriber, topics)
        watch.create()
        cleanup.callback(watch.delete)
        sent: set[str] = set()
        if replay:
            from .replay import validation_rides

            topic = f"projects/{topics.project}/topics/{topics.rides}"
            for ride in validation_rides(replay):
                publisher.publish(topic, ride.data, **ride.attributes).result(30)
                sent.add(ride.ride_id)
                time.sleep(1 / rate)
        deadline, last = time.monotonic() + seconds, time.monotonic()
        while time.monotonic() < deadline:
            if watch.pull():
                last = time.monotonic()
            elif sent and (watch.answered(sent) or time.monotonic() - last > idle_s):
                break
        return figures(watch.seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Topics(project="")
    parser.add_argument("--project", required=True)
    parser.add_argument("--emulator", help="the Pub/Sub emulator's HOST:PORT (make run: 8085)")
    parser.add_argument("--rides-topic", default=d.rides)
    parser.add_argument("--results-topic", default=d.results)
    parser.add_argument("--dead-letter-topic", default=d.dead_letters)
    parser.add_argument("--shadow-topic", default=d.shadow)
    parser.add_argument("--replay", type=int, default=0, help="rides of the validation month")
    parser.add_argument("--rate", type=float, default=20.0, help="replayed rides a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to watch")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    topics = Topics(
        args.project,
        args.rides_topic,
        args.results_topic,
        args.dead_letter_topic,
        args.shadow_topic,
    )
    values = compare(topics, args.emulator, args.replay, args.rate, args.seconds)
    sys.stdout.write((json.dumps(values) if args.json else report(values)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
