"""The ride a client sends: validation, and the message published for the predictor."""

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo

# TLC timestamps, and so the models, are New York wall-clock time.
NYC = ZoneInfo("America/New_York")
ZONE_MIN, ZONE_MAX = 1, 265  # TLC taxi zone ids
MAX_TRIP_MILES = 200.0
# Keeps time-zone arithmetic away from datetime's year 1 and 9999 edges.
YEARS = (2000, 2100)
RIDE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class InvalidRide(ValueError):
    """The ride has bad fields; `fields` maps each one to what is wrong with it."""

    def __init__(self, fields: dict[str, str]) -> None:
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
        features = {
            "PULocationID": self.pickup_zone,
            "DOLocationID": self.dropoff_zone,
            "trip_distance": self.trip_distance,
            "datetime": self.pickup_datetime.isoformat(),
        }
        return json.dumps({"ride_id": ride_id, "features": features}).encode()


def parse_ride(payload: Any, now: datetime) -> Ride:
    """Validate a request body; a missing datetime means `now` (aware)."""
    if not isinstance(payload, dict):
        raise InvalidRide({"body": "must be a JSON object"})
    problems: dict[str, str] = {}
    zones = [_zone(payload, name, problems) for name in ("PULocationID", "DOLocationID")]
    distance = payload.get("trip_distance")
    if not _is_number(distance) or not 0 < distance <= MAX_TRIP_MILES:
        problems["trip_distance"] = f"must be a number of miles in (0, {MAX_TRIP_MILES:g}]"
    when = _datetime(payload.get("datetime"), now, problems)
    ride_id = payload.get("ride_id")
    if ride_id is not None and (not isinstance(ride_id, str) or not RIDE_ID.match(ride_id)):
        problems["ride_id"] = "must be 1-128 characters of letters, digits, '.', '_', ':', '-'"
    if problems:
        raise InvalidRide(problems)
    return Ride(zones[0], zones[1], float(distance), when, ride_id)  # type: ignore[arg-type]


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _zone(payload: dict[str, Any], name: str, problems: dict[str, str]) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not ZONE_MIN <= value <= ZONE_MAX:
        problems[name] = f"must be an integer zone id in [{ZONE_MIN}, {ZONE_MAX}]"
        return 0
    return value


def _datetime(value: Any, now: datetime, problems: dict[str, str]) -> datetime:
    if value is None:
        return now.astimezone(NYC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if not YEARS[0] <= parsed.year <= YEARS[1]:
                problems["datetime"] = f"must be between the years {YEARS[0]} and {YEARS[1]}"
                return now
            # A time without an offset is New York local time, as in the TLC data.
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=NYC)
    problems["datetime"] = "must be an ISO 8601 date and time, e.g. 2021-02-03T08:30:00"
    return now
