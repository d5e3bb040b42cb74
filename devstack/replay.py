"""Rides replayed from the validation month, each carrying its actual duration from the TLC data."""

import uuid
from dataclasses import dataclass

from ride_stream.messages import RIDE_ID, encode_ride
from ride_stream.rides import NYC

from .comparison import ACTUAL


@dataclass(frozen=True)
class Replayed:
    ride_id: str
    data: bytes
    attributes: dict[str, str]
    actual_minutes: float


def validation_rides(count: int, seed: int = 0) -> list[Replayed]:
    """`count` trips of the validation month (green taxi 2021-02, 1-60 minutes), as rides."""
    from training.data import VALID_FILE, load_trips

    trips = load_trips(VALID_FILE).sample(n=count, random_state=seed)
    rides = []
    for trip in trips.itertuples():
        ride_id = uuid.uuid4().hex  # hex: a shadow's fraction filter reads its first digit
        data = encode_ride(
            ride_id,
            int(trip.PULocationID),
            int(trip.DOLocationID),
            float(trip.trip_distance),
            # TLC times are New York wall-clock times, as the model was trained on them.
            trip.lpep_pickup_datetime.tz_localize(NYC).to_pydatetime(),
        )
        actual = float(trip.duration)
        attributes = {RIDE_ID: ride_id, ACTUAL: f"{actual:.4f}"}
        rides.append(Replayed(ride_id, data, attributes, actual))
    return rides
