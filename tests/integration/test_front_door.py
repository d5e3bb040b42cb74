"""The real predictor behind a Cloud Run IAM front-door double, configured as the rollout does."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.emulator import Emulator
from devstack.frontdoor import FrontDoor
from devstack.pubsub import emulator_clients, push_envelope
from devstack.stack import Stack, start_isolated
from tests.kit import cloudbuild
from tests.kit.deploy_scripts import ROLLOUT, base_env, command, dry_run, env_vars, flag
from tests.kit.rides import ride_message
from tests.kit.stream import pull_all
from tests.kit.trained import TrainedModel

pytestmark = pytest.mark.emulator

INVOKER = "push-invoker@test-project.iam.gserviceaccount.com"
STRANGER = "someone-else@test-project.iam.gserviceaccount.com"


def deployed_env() -> dict[str, str]:
    """The serving revision's environment, as `deploy/rollout_predictor.sh --dry-run` sets it.

    The dry run is a first deploy: the revision that serves pushes is the deploy's
    `--set-env-vars` plus the `--update-env-vars` that follow once the URL exists.
    """
    # An s3:// model needs no tracking server, so no tracking URI to point elsewhere here.
    step = cloudbuild.predictor_step_env(_MODEL_URI="s3://models/ride-duration/1")
    plan = dry_run(ROLLOUT, env=base_env() | step)
    update = flag(command(plan, "gcloud", "run", "services", "update"), "update-env-vars")
    return env_vars(command(plan, "gcloud", "run", "deploy")) | dict(
        item.split("=", 1) for item in update.split(",")
    )


def start_predictor(emulator: Emulator, model: TrainedModel, workdir: Path, **env: str) -> Stack:
    """Start the predictor under gunicorn with the deployed environment, made local by `env`."""
    suffix = uuid.uuid4().hex[:8]
    results, dead_letters = f"results-{suffix}", f"dead-letters-{suffix}"
    local = {
        "PROJECT_ID": emulator.project,
        "RESULTS_TOPIC": results,
        "DEAD_LETTER_TOPIC": dead_letters,
        "MODEL_URI": str(model.folder),
        "PUSH_SERVICE_ACCOUNT": INVOKER,
        # Deployed, spans go to Cloud Trace with the runtime's credentials; none exist here, so
        # the local span file stands in.
        "TRACE_EXPORTER": "local",
        "TRACE_FILE": str(workdir / "spans.jsonl"),
    }
    return start_isolated(
        emulator,
        workdir,
        backends=0,
        rides_topic=f"rides-{suffix}",
        results_topic=results,
        dead_letter_topic=dead_letters,
        model_uri=str(model.folder),
        tracking_uri=model.tracking_uri,
        service_env=deployed_env() | local | env,
    )


def push(url: str, ride_id: str, authorization: str) -> requests.Response:
    """POST one ride to `url` as a Pub/Sub push delivery carrying `authorization`."""
    attributes = {"ride_id": ride_id, "reply_to": "front-door-test"}
    return requests.post(
        url,
        data=push_envelope(ride_message(ride_id), attributes),
        headers={"Authorization": authorization, "Content-Type": "application/json"},
        timeout=30,
    )


@pytest.fixture(scope="module")
def door() -> Iterator[FrontDoor]:
    with FrontDoor([INVOKER]) as front_door:
        yield front_door


@pytest.fixture(scope="module")
def private_predictor(
    emulator: Emulator,
    trained_model: TrainedModel,
    door: FrontDoor,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The predictor as deployed (PUSH_AUTH_MODE from the rollout), behind `door`."""
    workdir = tmp_path_factory.mktemp("front-door")
    stack = start_predictor(emulator, trained_model, workdir, PUSH_AUDIENCE=door.audience)
    door.upstream = stack.predictor.url
    try:
        yield stack
    finally:
        door.upstream = None
        stack.stop()


@pytest.fixture
def results(private_predictor: Stack) -> Iterator[str]:
    """A pull subscription of the test's own on the predictor's results topic."""
    t = private_predictor.settings.topology
    name = t.subscription_path(f"front-door-{uuid.uuid4().hex[:8]}")
    with emulator_clients(private_predictor.address) as (_, subscriber):
        subscriber.create_subscription(
            request={"name": name, "topic": t.topic_path(t.results_topic)}, timeout=10
        )
        try:
            yield name
        finally:
            subscriber.delete_subscription(request={"subscription": name}, timeout=10)


def test_invokers_push_through_the_front_door_is_acked_and_published(
    private_predictor: Stack, door: FrontDoor, results: str
) -> None:
    response = push(door.url + "/", "fd-1", f"Bearer {door.mint(INVOKER)}")

    assert response.status_code == 204, response.text
    published = [json.loads(m.data) for m in pull_all(private_predictor.address, results, want=1)]
    assert [r["ride_id"] for r in published] == ["fd-1"]
    assert published[0]["duration_final"] > 0


def test_another_accounts_push_is_refused_by_the_front_door(
    private_predictor: Stack, door: FrontDoor
) -> None:
    forwarded_before = list(door.forwarded)

    response = push(door.url + "/", "fd-2", f"Bearer {door.mint(STRANGER)}")

    assert response.status_code == 403
    assert door.forwarded == forwarded_before  # it never reached the predictor


def test_removed_signature_is_401_from_a_predictor_in_signature_mode(
    emulator: Emulator, trained_model: TrainedModel, door: FrontDoor, tmp_path: Path
) -> None:
    stack = start_predictor(
        emulator, trained_model, tmp_path, PUSH_AUTH_MODE="signature", PUSH_AUDIENCE=door.audience
    )
    try:
        # What the front door forwards for the invoker: valid claims, signature removed.
        stripped = door.admit(f"Bearer {door.mint(INVOKER)}")

        response = push(stack.predictor.url + "/", "fd-3", stripped)

        assert response.status_code == 401
    finally:
        stack.stop()
