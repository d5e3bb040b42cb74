"""The ride message the backend publishes, decoded and validated."""

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from .errors import PermanentError
from .features import local_time

ZONE_MIN, ZONE_MAX = 1, 265  # TLC taxi zone ids
MAX_TRIP_MILES = 200.0
MAX_RIDE_ID_LENGTH = 128
YEARS = (2000, 2100)


@dataclass(frozen=True)
class Ride:
    ride_id: str
    pickup_zone: int
    dropoff_zone: int
    trip_distance: float
    pickup_datetime: datetime  # New York wall-clock time, naive


def decode_ride(data: bytes) -> Ride:
    """Parse a ride message `{"ride_id", "features": {...}}` or raise PermanentError."""
    try:
        message = json.loads(data)
    # RecursionError: JSON nested deeper than the decoder allows is no ride either, and
    # must not become a 500 that Pub/Sub would redeliver.
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise PermanentError("data-not-json", str(err), data) from err
    if not isinstance(message, dict) or not isinstance(message.get("features"), dict):
        raise PermanentError("invalid-ride", "expected an object with a 'features' object", data)
    problems: list[str] = []
    ride_id = message.get("ride_id")
    if not isinstance(ride_id, str) or not 0 < len(ride_id) <= MAX_RIDE_ID_LENGTH:
        problems.append(f"ride_id must be a string of 1 to {MAX_RIDE_ID_LENGTH} characters")
    features = message["features"]
    pickup = _zone(features, "PULocationID", problems)
    dropoff = _zone(features, "DOLocationID", problems)
    distance = features.get("trip_distance")
    if not _is_number(distance) or not 0 < distance <= MAX_TRIP_MILES:
        problems.append(f"trip_distance must be a number in (0, {MAX_TRIP_MILES:g}] miles")
    when = _datetime(features.get("datetime"), problems)
    if problems:
        raise PermanentError("invalid-ride", "; ".join(problems), data)
    return Ride(str(ride_id), pickup, dropoff, float(distance), when)  # type: ignore[arg-type]


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _zone(features: dict[str, Any], name: str, problems: list[str]) -> int:
    value = features.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not ZONE_MIN <= value <= ZONE_MAX:
        problems.append(f"{name} must be an integer zone id in [{ZONE_MIN}, {ZONE_MAX}]")
        return 0
    return value


def _datetime(value: Any, problems: list[str]) -> datetime:
    if isinstance(value, str):
        try:
            when = local_time(datetime.fromisoformat(value))
        except (ValueError, OverflowError):
            pass
        else:
            if YEARS[0] <= when.year <= YEARS[1]:
                return when
    problems.append(
        f"datetime must be an ISO 8601 date and time in the years {YEARS[0]}-{YEARS[1]}"
    )
    return datetime.min
