"""Hypothesis strategies for rides and for any JSON a client might send."""

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

zones = st.integers(1, 265)
miles = st.floats(min_value=0.0, max_value=200.0, exclude_min=True, allow_nan=False)
offsets = st.none() | st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
pickups = st.builds(
    lambda when, tz: when.replace(tzinfo=tz),
    st.datetimes(datetime(2000, 1, 2), datetime(2099, 12, 30)),
    offsets,
)
ride_ids = st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z")
valid_rides = st.fixed_dictionaries(
    {"PULocationID": zones, "DOLocationID": zones, "trip_distance": miles},
    optional={"datetime": pickups.map(datetime.isoformat), "ride_id": ride_ids},
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
