"""The rider's page and its files, served by the backend itself from its own origin."""

import csv
import io
import re

from backend_service.routes import PAGE_POLICY


def test_root_serves_the_page_with_a_same_origin_policy(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PAGE_POLICY
    assert "default-src 'self'" in PAGE_POLICY


def test_the_page_loads_nothing_from_another_origin(client):
    html = client.get("/").get_data(as_text=True)

    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, "the page names its script and style"
    assert all(source.startswith("/static/") for source in sources)
    for source in sources:
        assert client.get(source).status_code == 200, source


def test_every_control_has_a_label(client):
    html = client.get("/").get_data(as_text=True)

    controls = re.findall(r'<(?:select|input)[^>]*\bid="([^"]+)"', html)
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    assert controls and set(controls) <= labelled


def test_the_zone_table_lists_every_zone_the_api_takes(client):
    response = client.get("/static/taxi_zone_lookup.csv")

    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(row["LocationID"]) for row in rows] == list(range(1, 266))
    assert {"Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island"} <= {
        row["Borough"] for row in rows
    }


def test_a_missing_static_file_is_404_in_the_error_shape(client):
    response = client.get("/static/nothing-here.js")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404
