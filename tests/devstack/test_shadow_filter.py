"""devstack.shadow.ride_filter: the fraction of rides a shadow subscription lets through."""

import pytest

from devstack.shadow import ride_filter


def test_all_rides_need_no_filter() -> None:
    assert ride_filter(16) == ""


def test_a_quarter_is_the_ride_ids_starting_with_0_to_3() -> None:
    assert ride_filter(4) == (
        'hasPrefix(attributes.ride_id, "0") OR hasPrefix(attributes.ride_id, "1") OR '
        'hasPrefix(attributes.ride_id, "2") OR hasPrefix(attributes.ride_id, "3")'
    )


@pytest.mark.parametrize("sixteenths", [0, 17])
def test_a_fraction_out_of_range_is_refused(sixteenths: int) -> None:
    with pytest.raises(ValueError, match="1 to 16"):
        ride_filter(sixteenths)
