"""The shadow subscription ship_model.sh makes, pushing to the candidate's tag URL through a
Cloud Run front-door double, with production and the candidate under gunicorn on the emulator.

The pushes carry what Pub/Sub would put on them for that subscription: its endpoint, its
`--push-auth-token-audience`, its service account and its name in the envelope.
"""

import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests

from devstack.frontdoor import FrontDoor
from devstack.pubsub import emulator_clients, push_envelope
from devstack.shadow import Shadow, candidate_service
from devstack.stack import Stack
from tests.kit.deploy_scripts import SHIP_MODEL, base_env, command, dry_run, flag
from tests.kit.rides import ride_message
from tests.kit.stream import results_reader

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

# What the dry run stands in for `gcloud run services describe ... value(status.url)`.
SERVICE_URL = "https://ride-predictor-PROJECT_NUMBER.us-central1.run.app"


@dataclass(frozen=True)
class ShadowSubscription:
    name: str
    endpoint: str
    audience: str
    account: str
    results_topic: str


def planned_shadow() -> ShadowSubscription:
    """The shadow subscription `ship_model.sh --dry-run shadow` would create, names of its own."""
    suffix = uuid.uuid4().hex[:8]
    env = base_env(
        PROJECT_ID="test-project", PYTHON=sys.executable,
        SHADOW_SUBSCRIPTION=f"shadow-{suffix}", SHADOW_RESULTS_TOPIC=f"shadow-results-{suffix}",
    )  # fmt: skip
    plan = dry_run(SHIP_MODEL, "shadow", env=env)
    sub = command(plan, "gcloud", "pubsub", "subscriptions", "create")
    return ShadowSubscription(
        name=sub[4],
        endpoint=flag(sub, "push-endpoint"),
        audience=flag(sub, "push-auth-token-audience"),
        account=flag(sub, "push-auth-service-account"),
        results_topic=command(plan, "gcloud", "pubsub", "topics", "create")[4],
    )


@dataclass
class Rollout:
    stack: Stack
    door: FrontDoor
    shadow: ShadowSubscription


@pytest.fixture
def rollout(make_stack, trained_model) -> Iterator[Rollout]:
    """Production and a candidate tagged `candidate`, private behind the door, as deployed."""
    shadow = planned_shadow()
    assert urlsplit(shadow.endpoint).netloc == f"candidate---{urlsplit(SERVICE_URL).netloc}"
    deployed = {
        "PUSH_AUDIENCE": SERVICE_URL,  # rollout_predictor.sh: the service's URL
        "PUSH_AUTH_MODE": "cloud-run-iam",
        "PUSH_SERVICE_ACCOUNT": shadow.account,
    }
    stack = make_stack(backends=0, service_env=deployed)
    t = stack.settings.topology
    with emulator_clients(stack.address) as (publisher, _):  # the plan's `topics create`
        publisher.create_topic(request={"name": t.topic_path(shadow.results_topic)}, timeout=10)
    candidate = candidate_service(
        stack, str(trained_model.folder), Shadow(shadow.name, shadow.results_topic)
    )
    door = FrontDoor(
        [shadow.account],
        stack.predictor.url,
        service_url=SERVICE_URL,
        tags={"candidate": candidate.url},
    )
    with door:
        yield Rollout(stack, door, shadow)
    candidate.stop()


def push(door: FrontDoor, endpoint: str, token: str, ride_id: str, subscription: str):
    """Deliver one ride to `endpoint` through `door`, as Pub/Sub's push would."""
    url, host = door.target(endpoint)
    envelope = push_envelope(
        ride_message(ride_id), {"ride_id": ride_id, "reply_to": "shadow-test"},
        subscription=subscription,
    )  # fmt: skip
    headers = host | {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return requests.post(url, data=envelope, headers=headers, timeout=30)


def test_the_shadow_push_reaches_the_candidate_and_answers_on_the_shadow_topic(rollout):
    stack, door, shadow = rollout.stack, rollout.door, rollout.shadow
    token = door.mint(shadow.account, aud=shadow.audience)
    path = stack.settings.topology.subscription_path(shadow.name)
    t = stack.settings.topology
    with (
        results_reader(stack.address, t, shadow.results_topic) as shadow_results,
        results_reader(stack.address, t) as rider_results,
    ):
        response = push(door, shadow.endpoint, token, "tag-1", path)

        assert response.status_code == 204, response.text
        assert door.forwarded == [f"POST {shadow.endpoint}"]
        answered = [json.loads(m.data) for m in shadow_results(1, 30)]
        assert [a["ride_id"] for a in answered] == ["tag-1"]
        assert rider_results(1, 3) == []


def test_a_token_for_the_tag_url_or_another_service_is_refused(rollout):
    door, shadow = rollout.door, rollout.shadow
    path = rollout.stack.settings.topology.subscription_path(shadow.name)
    # Pub/Sub's audience when none is given: the push endpoint, the tag URL.
    for audience in (shadow.endpoint, "https://ride-backend-PROJECT_NUMBER.us-central1.run.app"):
        token = door.mint(shadow.account, aud=audience)

        response = push(door, shadow.endpoint, token, "tag-2", path)

        assert response.status_code == 401, (audience, response.text)
    assert door.forwarded == []
