"""The ride rules both services apply: zone ids, distance and pickup time."""

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo

# TLC timestamps, and so the models, are New York wall-clock time.
NYC = ZoneInfo("America/New_York")
ZONE_MIN, ZONE_MAX = 1, 265  # TLC taxi zone ids
MAX_TRIP_MILES = 200.0
# Keeps time-zone arithmetic away from datetime's year 1 and 9999 edges.
YEARS = (2000, 2100)

# Field name -> what is wrong with it, in words a client can act on.
Problems = dict[str, str]


def check_trip(fields: Mapping[str, Any], problems: Problems) -> tuple[int, int, float]:
    """Return the pickup zone, drop-off zone and miles; name each bad one in `problems`."""
    pickup, dropoff = (_zone(fields, name, problems) for name in ("PULocationID", "DOLocationID"))
    miles = fields.get("trip_distance")
    if not is_number(miles) or not 0 < miles <= MAX_TRIP_MILES:
        problems["trip_distance"] = f"must be a number of miles in (0, {MAX_TRIP_MILES:g}]"
        return pickup, dropoff, 0.0
    return pickup, dropoff, float(miles)


def check_pickup_time(value: Any, problems: Problems) -> datetime:
    """Return an ISO 8601 pickup time as an aware datetime; one without offset is New York's."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if not YEARS[0] <= parsed.year <= YEARS[1]:
                problems["datetime"] = f"must be between the years {YEARS[0]} and {YEARS[1]}"
                return datetime.min.replace(tzinfo=NYC)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=NYC)
    problems["datetime"] = "must be an ISO 8601 date and time, e.g. 2021-02-03T08:30:00"
    return datetime.min.replace(tzinfo=NYC)


def is_number(value: Any) -> TypeGuard[float]:
    """Say whether `value` is a finite JSON number (booleans are not numbers)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _zone(fields: Mapping[str, Any], name: str, problems: Problems) -> int:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not ZONE_MIN <= value <= ZONE_MAX:
        problems[name] = f"must be an integer zone id in [{ZONE_MIN}, {ZONE_MAX}]"
        return 0
    return value
