"""The messages on the rides and results topics, and the attributes that route them.

A ride: `{"ride_id", "features": {"PULocationID", "DOLocationID", "trip_distance",
"datetime"}}` with attributes `ride_id` and `reply_to` (the backend process waiting for it).
Other producers' rides are read too: the course's `{"ride_id": 123, "ride": {...}}` (the ride
under `ride`, an integer ride_id), and either shape without `datetime`, which then means the
time the message was published (Pub/Sub's `publishTime`; the time of receipt without one).
A result: `{"ride_id", "duration_final", "model_version"}`, its ride_id as the ride carried it
(string or integer), with attributes `ride_id` (always a string) and `reply_to` when the ride
had one.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .rides import Problems, check_pickup_time, check_trip, is_number

RIDE_ID = "ride_id"  # attribute: the ride a message is about
REPLY_TO = "reply_to"  # attribute: which backend process waits for the ride's result
MAX_RIDE_ID_LENGTH = 128


class InvalidMessage(ValueError):
    """The message can never be processed; `reason` is a short code, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RideMessage:
    ride_id: str  # as the ride_id attribute carries it
    pickup_zone: int
    dropoff_zone: int
    trip_distance: float
    pickup_datetime: datetime  # aware
    sent_ride_id: str | int | None = None  # as the producer sent it, when not the same string

    @property
    def result_ride_id(self) -> str | int:
        """The ride_id for the result's JSON: the producer's own value."""
        return self.ride_id if self.sent_ride_id is None else self.sent_ride_id


@dataclass(frozen=True)
class Result:
    ride_id: str
    duration_final: float
    model_version: str


def encode_ride(
    ride_id: str, pickup_zone: int, dropoff_zone: int, trip_distance: float, pickup: datetime
) -> bytes:
    """Serialise a ride for the rides topic."""
    features = {
        "PULocationID": pickup_zone,
        "DOLocationID": dropoff_zone,
        "trip_distance": trip_distance,
        "datetime": pickup.isoformat(),
    }
    return json.dumps({"ride_id": ride_id, "features": features}).encode()


def decode_ride(data: bytes, published: datetime | None = None) -> RideMessage:
    """Parse a ride message or raise InvalidMessage naming every problem.

    `published` (aware) is the pickup time of a ride that has no `datetime` of its own.
    """
    try:
        message = json.loads(data)
    # RecursionError: JSON nested deeper than the decoder allows is no ride either, and
    # must not become an error that Pub/Sub would redeliver.
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise InvalidMessage("data-not-json", str(err)) from err
    features = _ride_fields(message)
    if features is None:
        raise InvalidMessage("invalid-ride", "expected an object with a ride: 'features' or 'ride'")
    problems: Problems = {}
    ride_id = message.get("ride_id")
    # The course's producers number their rides; booleans are JSON's, not numbers.
    sent = ride_id if isinstance(ride_id, int) and not isinstance(ride_id, bool) else None
    valid = isinstance(ride_id, str) or sent is not None
    if not valid or not 0 < len(str(ride_id)) <= MAX_RIDE_ID_LENGTH:
        problems["ride_id"] = (
            f"must be a string of 1 to {MAX_RIDE_ID_LENGTH} characters, or an integer"
        )
    pickup, dropoff, miles = check_trip(features, problems)
    if features.get("datetime") is None and published is not None:
        when = published
    else:
        when = check_pickup_time(features.get("datetime"), problems)
    if problems:
        detail = "; ".join(f"{name} {problem}" for name, problem in problems.items())
        raise InvalidMessage("invalid-ride", detail)
    return RideMessage(str(ride_id), pickup, dropoff, miles, when, sent)


def _ride_fields(message: Any) -> dict[str, Any] | None:
    """The ride's own fields: ours under `features`, the course's under `ride`."""
    if not isinstance(message, dict):
        return None
    for key in ("features", "ride"):
        if isinstance(message.get(key), dict):
            return message[key]  # type: ignore[no-any-return]
    return None


def encode_result(ride_id: str | int, duration_final: float, model_version: str) -> bytes:
    """Serialise the prediction the backend waits for."""
    return json.dumps(
        {"ride_id": ride_id, "duration_final": duration_final, "model_version": model_version}
    ).encode()


def decode_result(data: bytes) -> Result:
    """Parse a result message; raise ValueError if it is not one."""
    try:
        result: Any = json.loads(data)
        duration = result["duration_final"]
        if not is_number(duration):
            raise ValueError(f"duration_final is not a number: {duration!r}")
        return Result(str(result["ride_id"]), float(duration), str(result["model_version"]))
    except (KeyError, TypeError, RecursionError) as err:
        raise ValueError(f"not a result message: {err!r}") from err
