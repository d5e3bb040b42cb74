"""The ride a client sends: validation, and the message published for the predictor."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ride_stream.messages import encode_ride
from ride_stream.rides import NYC, Problems, check_pickup_time, check_trip

RIDE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class InvalidRide(ValueError):
    """The ride has bad fields; `fields` maps each one to what is wrong with it."""

    def __init__(self, fields: Problems) -> None:
        super().__init__("invalid ride: " + ", ".join(sorted(fields)))
        self.fields = fields


@dataclass(frozen=True)
class Ride:
    pickup_zone: int
    dropoff_zone: int
    trip_distance: float
    pickup_datetime: datetime  # aware
    ride_id: str | None = None

    @property
    def local_datetime(self) -> datetime:
        """New York wall-clock time of the pickup, as the models expect."""
        return self.pickup_datetime.astimezone(NYC).replace(tzinfo=None)

    def message(self, ride_id: str) -> bytes:
        """Serialise the ride for the rides topic."""
        return encode_ride(
            ride_id, self.pickup_zone, self.dropoff_zone, self.trip_distance, self.pickup_datetime
        )


def parse_ride(payload: Any, now: datetime) -> Ride:
    """Validate a request body; a missing datetime means `now` (aware)."""
    if not isinstance(payload, dict):
        raise InvalidRide({"body": "must be a JSON object"})
    problems: Problems = {}
    pickup, dropoff, miles = check_trip(payload, problems)
    raw_time = payload.get("datetime")
    when = now.astimezone(NYC) if raw_time is None else check_pickup_time(raw_time, problems)
    ride_id = payload.get("ride_id")
    if ride_id is not None and (not isinstance(ride_id, str) or not RIDE_ID.match(ride_id)):
        problems["ride_id"] = "must be 1-128 characters of letters, digits, '.', '_', ':', '-'"
    if problems:
        raise InvalidRide(problems)
    return Ride(pickup, dropoff, miles, when, ride_id)
