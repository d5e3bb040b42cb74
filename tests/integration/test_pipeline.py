"""The whole stream on the real emulator, both services under gunicorn, the real model."""

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack.processes import free_port
from devstack.pubsub import emulator_clients
from devstack.rides import expected_duration
from predictor_service.model import load_model
from tests.kit.stream import pull_all

pytestmark = pytest.mark.emulator


def ride(distance: float, ride_id: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "PULocationID": 74,
        "DOLocationID": 168,
        "trip_distance": distance,
        "datetime": "2021-02-03T08:30:00",
    }
    if ride_id:
        body["ride_id"] = ride_id
    return body


def post_json(url: str, body: object) -> requests.Response:
    return requests.post(url, json=body, timeout=30)


@pytest.fixture(scope="module")
def model(trained_model):
    return load_model(str(trained_model.folder))


def test_confirmed_ride_gets_its_own_final_duration(make_stack, model):
    stack = make_stack()
    body = ride(3.2)

    response = post_json(f"{stack.backends[0].url}/rides", body)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["duration_final"] == expected_duration(model, body)
    assert result["model_version"] == "ride-duration/1"
    assert result["duration_coarse"] > 0
    lookup = requests.get(f"{stack.backends[0].url}/rides/{result['ride_id']}", timeout=5)
    assert lookup.json()["duration_final"] == result["duration_final"]


def test_two_backends_never_see_each_others_results(make_stack, model):
    stack = make_stack(backends=2)
    urls = [b.url for b in stack.backends]
    rides = [ride(round(0.5 + i * 0.6, 2), ride_id=f"r{i:03d}") for i in range(200)]
    random.Random(7).shuffle(rides)

    def confirm(i_ride):
        i, body = i_ride
        return urls[i % 2], body, post_json(f"{urls[i % 2]}/rides", body)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(confirm, enumerate(rides)))

    for url, body, response in answers:
        assert response.status_code == 200, (body, response.text)
        assert response.json()["ride_id"] == body["ride_id"]
        assert response.json()["duration_final"] == expected_duration(model, body)
        other = urls[1 - urls.index(url)]
        assert requests.get(f"{other}/rides/{body['ride_id']}", timeout=5).status_code == 404


def test_poison_messages_end_in_the_dead_letter_subscription(make_stack, model):
    stack = make_stack()
    t = stack.settings.topology
    poison = {
        b"not json at all": "data-not-json",
        json.dumps({"ride_id": "x"}).encode(): "invalid-ride",
        json.dumps({"ride_id": "p1", "features": {**ride(-1.0)}}).encode(): "invalid-ride",
        json.dumps({"ride_id": "p2", "features": {**ride(2.0), "PULocationID": "74"}}).encode(): (
            "invalid-ride"
        ),
    }
    with emulator_clients(stack.address) as (publisher, _):
        for data in poison:
            publisher.publish(t.topic_path(t.rides_topic), data, reply_to="nobody").result(10)
    # Envelopes Pub/Sub itself would never send: straight to the predictor's endpoint.
    direct = {b"{not json": "body-not-json", b'{"subscription": "s"}': "envelope-without-message"}
    direct[json.dumps({"message": {"data": "@@not base64@@"}}).encode()] = "data-not-base64"
    for body in direct:
        response = requests.post(f"{stack.predictor.url}/", data=body, timeout=10)
        assert response.status_code == 204

    dead = pull_all(stack.address, t.subscription_path(t.dead_letter_subscription), 7)

    reasons = sorted(m.attributes["reason"] for m in dead)
    assert reasons == sorted([*poison.values(), *direct.values()])
    assert all(m.attributes["error"] for m in dead)
    good = post_json(f"{stack.backends[0].url}/rides", ride(4.0))
    assert good.status_code == 200
    assert good.json()["duration_final"] == expected_duration(model, ride(4.0))


def test_redelivered_ride_keeps_its_first_answer(make_stack, model):
    stack = make_stack()
    backend = stack.backends[0].url
    t = stack.settings.topology
    body = ride(7.5, ride_id="dup-1")
    first = post_json(f"{backend}/rides", body).json()
    reply_to = requests.get(f"{backend}/readyz", timeout=5).json()["reply_to"]
    message = json.dumps({"ride_id": "dup-1", "features": ride(7.5)}).encode()
    forged = json.dumps({"ride_id": "dup-1", "duration_final": 1.0, "model_version": "x"}).encode()

    with emulator_clients(stack.address) as (publisher, _):
        # The same ride again, as a redelivery would bring it, and a conflicting result.
        publisher.publish(t.topic_path(t.rides_topic), message, ride_id="dup-1", reply_to=reply_to)
        publisher.publish(
            t.topic_path(t.results_topic), forged, ride_id="dup-1", reply_to=reply_to
        ).result(10)
    time.sleep(1.5)  # let both reach the backend's listener

    again = requests.get(f"{backend}/rides/dup-1", timeout=5).json()
    confirmed_again = post_json(f"{backend}/rides", body).json()
    assert first["duration_final"] == expected_duration(model, body)
    assert again["duration_final"] == first["duration_final"]
    assert confirmed_again["duration_final"] == first["duration_final"]


def test_backend_deletes_its_subscription_on_sigterm(make_stack):
    stack = make_stack()
    t = stack.settings.topology
    with emulator_clients(stack.address) as (publisher, _):
        before = list(publisher.list_topic_subscriptions(topic=t.topic_path(t.results_topic)))
    assert len(before) == 1

    stack.backends[0].stop()

    with emulator_clients(stack.address) as (publisher, _):
        after = list(publisher.list_topic_subscriptions(topic=t.topic_path(t.results_topic)))
    assert after == []


def test_predictor_refuses_to_start_without_its_model(make_stack, tmp_path):
    from devstack.stack import Service

    stack = make_stack()
    env = stack.predictor.process.env | {"MODEL_URI": str(tmp_path / "missing")}
    service = Service("predictor_service", stack.predictor.port + 0, env, tmp_path / "bad.log")
    service.port = free_port()
    service.process.env["PORT"] = str(service.port)

    service.start(wait=False)
    code = service.process.wait(timeout_s=60)

    assert code is not None and code != 0
    assert "refusing to start" in service.process.log_tail(200)
    assert "missing" in service.process.log_tail(200)
