"""The front-door double's rules for tagged URLs and audiences, as Cloud Run documents them."""

import pytest

from devstack.frontdoor import FrontDoor, Refused

INVOKER = "push-invoker@demo.iam.gserviceaccount.com"
SERVICE = "https://ride-predictor-123.us-central1.run.app"
TAG = "https://candidate---ride-predictor-123.us-central1.run.app"


@pytest.fixture
def door():
    door = FrontDoor(
        [INVOKER], "http://127.0.0.1:1", service_url=SERVICE, tags={"candidate": "http://c:2"}
    )
    yield door
    door.stop()


def test_a_tag_host_reaches_its_revision_and_the_service_host_the_traffic(door):
    assert door.tag_url("candidate") == TAG
    assert door.route(door.target(TAG + "/")[1]["Host"]) == "http://c:2"
    assert door.route(door.target(SERVICE)[1]["Host"]) == "http://127.0.0.1:1"
    assert door.target(TAG + "/push?x=1")[0] == f"{door.url}/push?x=1"


def test_an_unknown_tag_or_host_is_not_found(door):
    for host in ("previous---ride-predictor-123.us-central1.run.app", "elsewhere.run.app"):
        with pytest.raises(Refused) as refused:
            door.route(host)
        assert refused.value.status == 404


def test_the_service_url_is_an_audience_and_a_tag_url_is_not(door):
    assert door.admit(f"Bearer {door.mint(INVOKER, aud=SERVICE)}").endswith(
        ".SIGNATURE_REMOVED_BY_GOOGLE"
    )
    with pytest.raises(Refused) as refused:
        door.admit(f"Bearer {door.mint(INVOKER, aud=TAG)}")
    assert refused.value.status == 401


def test_a_custom_audience_is_accepted_once_set_on_the_service():
    door = FrontDoor([INVOKER], service_url=SERVICE, custom_audiences=[TAG])
    try:
        door.admit(f"Bearer {door.mint(INVOKER, aud=TAG)}")
        door.admit(f"Bearer {door.mint(INVOKER, aud=SERVICE)}")
    finally:
        door.stop()
