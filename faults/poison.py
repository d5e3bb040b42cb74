"""Hostile messages for the rides topic, and a look into the dead-letter subscription."""

import json
import random
import time

from deadletters import DeadLetter, fetch, release, subscriber_client
from devstack.stack import Stack

# Pub/Sub's limit is 10 MB a message; this one is just under it.
HUGE_BYTES = 9_500_000
RIDE = {"PULocationID": 74, "DOLocationID": 168, "trip_distance": 2.5}
WHEN = "2021-02-03T08:30:00"

WRONG_TYPES = {"PULocationID": "74", "DOLocationID": None, "trip_distance": "far", "datetime": 5}
OUT_OF_RANGE = RIDE | {"PULocationID": 999, "trip_distance": -1, "datetime": WHEN}


def _json(ride_id: object, features: dict[str, object] | None = None) -> bytes:
    return json.dumps({"ride_id": ride_id} | ({"features": features} if features else {})).encode()


# (what it is, data, the reason the predictor must dead-letter it with)
CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "data-not-json"),
    ("random bytes", random.Random(5).randbytes(256), "data-not-json"),
    ("plain text", b"please take me to JFK", "data-not-json"),
    ("invalid UTF-8", b"\xff\xfe\xfd{", "data-not-json"),
    ("nested past the decoder's depth", b"[" * 100_000, "data-not-json"),
    ("huge", b"x" * HUGE_BYTES, "data-not-json"),
    ("a JSON array", b"[1, 2, 3]", "invalid-ride"),
    ("no features", _json("p-nofeatures"), "invalid-ride"),
    ("wrong types", _json(7, WRONG_TYPES), "invalid-ride"),
    ("out of range", _json("p-range", OUT_OF_RANGE), "invalid-ride"),
    (
        "NaN distance",
        b'{"ride_id": "p-nan", "features": {"PULocationID": 1, "DOLocationID": 2, '
        b'"trip_distance": NaN, "datetime": "2021-02-03T08:30:00"}}',
        "invalid-ride",
    ),
    ("ride_id too long", _json("r" * 129, RIDE | {"datetime": WHEN}), "invalid-ride"),
]
EXPECTED_REASONS = [reason for _, _, reason in CASES]


def messages(reply_to: str) -> list[tuple[bytes, dict[str, str]]]:
    """Each poison message with the attributes a backend would have set."""
    return [
        (data, {"ride_id": f"poison-{i}", "reply_to": reply_to})
        for i, (_, data, _) in enumerate(CASES)
    ]


def dead_letters(stack: Stack, want: int, budget_s: float = 30) -> list[DeadLetter]:
    """Look (without consuming) until `want` dead letters are there or the budget is spent."""
    s = stack.settings
    subscription = f"projects/{s.project}/subscriptions/{s.dead_letter_subscription}"
    deadline = time.monotonic() + budget_s
    subscriber = subscriber_client(stack.address)
    try:
        while True:
            letters = fetch(subscriber, subscription)
            release(subscriber, subscription, letters)
            if len(letters) >= want or time.monotonic() > deadline:
                return letters
            time.sleep(1.0)
    finally:
        subscriber.close()
