"""The switch drill: a steady stream of rides while the riders' pushes move to the candidate
and back, as `ship_model.sh promote` and `rollback` move Cloud Run's traffic.

Locally there is no router in front of the predictors: the riders' push subscription's endpoint
is what moves. Every ride must be answered once, by one of the two models, and no rider may get
the candidate's answer before the promotion.
"""

import json
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from ride_stream.messages import decode_result, encode_ride

from .pubsub import emulator_clients
from .stack import Stack


def move_riders(stack: Stack, subscriber: Any, endpoint: str) -> None:
    """Point the riders' push subscription at `endpoint`: promotion, or rollback."""
    t = stack.settings.topology
    subscriber.modify_push_config(
        request={
            "subscription": t.subscription_path(t.push_subscription),
            "push_config": {"push_endpoint": endpoint},
        },
        timeout=10,
    )


def drill(
    stack: Stack, candidate_url: str, rides: int = 150, rate: float = 15.0, wait_s: float = 90.0
) -> dict[str, Any]:
    """Promote after a third of the rides, roll back after two thirds; count what riders got."""
    t = stack.settings.topology
    reader = t.subscription_path(f"switch-drill-{uuid.uuid4().hex[:8]}")
    with emulator_clients(stack.address) as (publisher, subscriber):
        subscriber.create_subscription(
            request={"name": reader, "topic": t.topic_path(t.results_topic)}, timeout=10
        )
        sent, moves = [], {}
        start = time.monotonic()
        for index in range(rides):
            if index == rides // 3:
                moves["promoted"] = time.time()
                move_riders(stack, subscriber, f"{candidate_url}/")
            if index == 2 * rides // 3:
                moves["rolled back"] = time.time()
                move_riders(stack, subscriber, f"{stack.predictor.url}/")
            ride_id = uuid.uuid4().hex
            ride = encode_ride(ride_id, 74, 75, 2.5, datetime.now(UTC))
            publisher.publish(t.topic_path(t.rides_topic), ride, ride_id=ride_id)
            sent.append(ride_id)
            time.sleep(max(0.0, start + (index + 1) / rate - time.monotonic()))
        answers = _pull(subscriber, reader, set(sent), wait_s)
        subscriber.delete_subscription(request={"subscription": reader}, timeout=10)
    counts = Counter(ride_id for ride_id, _, _ in answers)
    versions = Counter(version for _, version, _ in answers)
    candidate = model_version(candidate_url)
    early = [a for a in answers if a[1] == candidate and a[2] < moves["promoted"]]
    return {
        "rides sent": len(sent),
        "answered": len(counts),
        "lost": len(set(sent) - set(counts)),
        "answered twice": sum(1 for n in counts.values() if n > 1),
        "answers by model_version": dict(versions),
        "candidate model_version": candidate,
        "candidate answers before promotion": len(early),
    }


def model_version(url: str) -> str:
    """The version a predictor serves, as its /readyz says."""
    with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
        return str(json.load(response)["model_version"])


def _pull(
    subscriber: Any, name: str, want: set[str], wait_s: float
) -> list[tuple[str, str, float]]:
    """(ride id, model_version, publish time) of each result, until all came or `wait_s`."""
    got: list[tuple[str, str, float]] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not want <= {g[0] for g in got}:
        response = subscriber.pull(request={"subscription": name, "max_messages": 500}, timeout=10)
        for m in response.received_messages:
            result = decode_result(m.message.data)
            got.append((result.ride_id, result.model_version, m.message.publish_time.timestamp()))
        if ack_ids := [m.ack_id for m in response.received_messages]:
            subscriber.acknowledge(request={"subscription": name, "ack_ids": ack_ids})
    return got
