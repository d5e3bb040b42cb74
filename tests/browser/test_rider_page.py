"""The rider's page in headless Chromium against a real stack: both emulators, gunicorn, the model.

The backend reaches Pub/Sub through the fault proxy, so that a publish can fail for real (503);
the predictor is frozen with SIGSTOP to make a result late for real (202, then done).
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.lab import resume, stall
from devstack.proxy import ProxyProcess
from devstack.rides import expected_duration
from devstack.stack import Stack, start_isolated
from predictor_service.model import load_model

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
RIDE = {
    "PULocationID": 74,  # Manhattan, East Harlem North
    "DOLocationID": 168,  # Bronx, Mott Haven/Port Morris
    "trip_distance": 3.2,
    "datetime": "2021-02-03T08:30",
}
FIGURE_TIMEOUT_MS = 30_000  # a loaded two-core machine may take seconds per step
# Where the screenshots go; RIDER_PAGE_SCREENSHOTS=docs/img refreshes the README's.
SCREENSHOTS = os.environ.get("RIDER_PAGE_SCREENSHOTS")


@pytest.fixture(scope="module")
def proxy(emulator) -> Iterator[ProxyProcess]:
    instance = ProxyProcess(emulator.address)
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def stack(emulator, firestore_emulator, trained_model, proxy, tmp_path_factory) -> Iterator[Stack]:
    """`make run`'s stack (rides in Firestore) on ports and topics of its own."""
    running = start_isolated(
        emulator,
        tmp_path_factory.mktemp("rider-page"),
        ride_store="firestore",
        firestore=firestore_emulator,
        tracking_uri=trained_model.tracking_uri,
        model_uri=trained_model.model_uri,
        pubsub_hosts={"backend_service": proxy.address},
        service_env={"RESULT_TIMEOUT_S": "2", "PUBLISH_TIMEOUT_S": "1"},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def model(trained_model):
    return load_model(str(trained_model.folder))


@pytest.fixture
def page(browser, stack):
    """A fresh page on the backend's URL; every URL it requests is kept in `page.requested`."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(FIGURE_TIMEOUT_MS)
    tab.requested = []
    tab.on("request", lambda request: tab.requested.append(request.url))
    tab.goto(stack.backends[0].url + "/")
    yield tab
    context.close()


def fill_ride(page, distance: str = "3.2") -> None:
    """Pick the zones by name and type the distance and time, as a rider does."""
    page.get_by_label("Pickup zone").select_option(label="East Harlem North")
    page.get_by_label("Drop-off zone").select_option(label="Mott Haven/Port Morris")
    page.get_by_label("Distance (miles)").fill(distance)
    page.get_by_label("Pickup time").fill(RIDE["datetime"])


def coarse_of(stack: Stack, ride: dict[str, object]) -> float:
    answer = requests.post(f"{stack.backends[0].url}/estimate", json=ride, timeout=10)
    return float(answer.json()["duration_coarse"])


def screenshot(page, tmp_path: Path, name: str) -> None:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name))


def confirm(page, status: int):
    """Press Confirm; return the body of POST /rides, after checking its status."""
    with page.expect_response(lambda r: r.url.endswith("/rides")) as answer:
        page.get_by_role("button", name="Confirm ride").click()
    assert answer.value.status == status, answer.value.text()
    return answer.value.json()


def test_a_rider_sees_the_estimate_then_the_accurate_figure(page, stack, model, tmp_path):
    from playwright.sync_api import expect

    fill_ride(page)
    expect(page.locator("#coarse")).to_have_text(f"{coarse_of(stack, RIDE):.1f} min")
    body = confirm(page, 200)

    expect(page.locator("#final")).to_have_text(f"{expected_duration(model, RIDE):.1f} min")
    expect(page.locator("#model-version")).to_have_text(f"Model version: {body['model_version']}")
    origin = stack.backends[0].url + "/"
    assert all(url.startswith(origin) for url in page.requested), page.requested
    screenshot(page, tmp_path, "rider-page.png")


def test_a_distance_the_server_refuses_is_shown_next_to_the_field(page, stack):
    from playwright.sync_api import expect

    fill_ride(page, distance="500")  # positive, so the page lets the server judge it
    body = confirm(page, 422)

    message = body["error"]["fields"]["trip_distance"]
    expect(page.locator("#distance-error")).to_have_text(message)
    expect(page.get_by_label("Distance (miles)")).to_have_attribute("aria-invalid", "")
    expect(page.locator("#final")).to_have_text("—")


def test_a_stream_outage_is_shown_and_the_estimate_stands(page, stack, proxy):
    from playwright.sync_api import expect

    fill_ride(page)
    coarse = f"{coarse_of(stack, RIDE):.1f} min"
    expect(page.locator("#coarse")).to_have_text(coarse)
    proxy.fail_publishes(1.0)  # every Publish of the backend fails, UNAVAILABLE
    try:
        body = confirm(page, 503)
    finally:
        proxy.clear()

    expect(page.locator("#status")).to_contain_text(body["error"]["message"])
    expect(page.locator("#coarse")).to_have_text(coarse)
    expect(page.locator("#final")).to_have_text("—")


def test_a_late_result_shows_still_computing_then_arrives(page, stack, model):
    from playwright.sync_api import expect

    fill_ride(page)
    stall(stack.predictor)  # the ride is pushed to a frozen predictor: no result in time
    try:
        confirm(page, 202)
        expect(page.locator("#status")).to_contain_text("Still computing")
        expect(page.locator("#final")).to_have_text("—")
    finally:
        resume(stack.predictor)

    expect(page.locator("#final")).to_have_text(f"{expected_duration(model, RIDE):.1f} min")


def test_a_keyboard_alone_reaches_every_control_and_confirms(page, model):
    from playwright.sync_api import expect

    visited: list[str] = []
    for _ in range(12):  # the time input's segments take a Tab each
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        if not visited or visited[-1] != focused:
            visited.append(focused)
        if focused == "confirm":
            break
    assert visited == ["pickup", "dropoff", "distance", "pickup-time", "confirm"]

    page.get_by_label("Pickup zone").focus()
    page.keyboard.type("East Harlem N")  # a closed <select> selects by typed name
    page.keyboard.press("Tab")
    page.keyboard.type("Mott")
    page.keyboard.press("Tab")
    page.keyboard.type("3.2")
    page.keyboard.press("Enter")  # submits the form, as the Confirm button does

    expect(page.locator("#final")).to_have_text(re.compile(r"^\d+\.\d min$"))


def test_the_page_fits_a_phone(page, tmp_path):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 375, "height": 740})
    fill_ride(page)
    expect(page.locator("#coarse")).to_have_text(re.compile(r"^\d+\.\d min$"))

    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, tmp_path, "rider-page-phone.png")
