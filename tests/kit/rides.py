"""Sample rides as each service receives them."""

import json
from typing import Any

# A ride as the backend's API takes it.
RIDE = {
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 2.5,
    "datetime": "2021-02-03T08:30:00",
}


def ride_message(ride_id: str = "r1", **features: Any) -> bytes:
    """Return the message the backend publishes for RIDE, with `features` changed."""
    return json.dumps({"ride_id": ride_id, "features": RIDE | features}).encode()
