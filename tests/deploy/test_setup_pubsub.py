"""deploy/setup.sh --only pubsub, run for real through gcloud against the Pub/Sub emulator."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from google.cloud import pubsub_v1

from devstack.emulator import Emulator
from tests.kit.deploy_scripts import SETUP, emulator_pubsub_names_and_env, run_script

pytestmark = [pytest.mark.emulator, pytest.mark.slow]


@dataclass(frozen=True)
class Provisioned:
    project: str
    names: dict[str, str]
    runs: list  # the two finished setup.sh processes
    env: dict[str, str]


@pytest.fixture(scope="module")
def provisioned(
    gcloud: str, deploy_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Provisioned:
    """Run setup.sh twice against the emulator, with names of this module's own."""
    names, env = emulator_pubsub_names_and_env(
        deploy_emulator.address,
        deploy_emulator.project,
        tmp_path_factory.mktemp("gcloud-emulator-config"),
    )
    runs = [run_script(SETUP, "--only", "pubsub", env=env) for _ in range(2)]
    return Provisioned(deploy_emulator.project, names, runs, env)


@pytest.fixture
def subscriber(
    deploy_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pubsub_v1.SubscriberClient]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", deploy_emulator.address)
    client = pubsub_v1.SubscriberClient()
    yield client
    client.close()


def subscription(client: pubsub_v1.SubscriberClient, p: Provisioned, key: str):
    return client.get_subscription(subscription=client.subscription_path(p.project, p.names[key]))


def changes(run) -> list[str]:
    """The commands a setup run executed that change something (echoed with '+ ')."""
    return [line[2:] for line in run.stderr.splitlines() if line.startswith("+ ")]


def test_both_runs_succeed(provisioned: Provisioned) -> None:
    assert [run.returncode for run in provisioned.runs] == [0, 0], provisioned.runs[0].stderr


def test_three_topics_exist(
    provisioned: Provisioned, deploy_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", deploy_emulator.address)
    publisher = pubsub_v1.PublisherClient()
    topics = {t.name for t in publisher.list_topics(project=f"projects/{provisioned.project}")}

    for key in ("RIDES_TOPIC", "RESULTS_TOPIC", "DEAD_LETTER_TOPIC"):
        assert publisher.topic_path(provisioned.project, provisioned.names[key]) in topics


def test_push_subscription_dead_letters_after_five_attempts(
    provisioned: Provisioned, subscriber
) -> None:
    sub = subscription(subscriber, provisioned, "PUSH_SUBSCRIPTION")

    dead_letter_topic = (
        f"projects/{provisioned.project}/topics/{provisioned.names['DEAD_LETTER_TOPIC']}"
    )
    assert sub.dead_letter_policy.dead_letter_topic == dead_letter_topic
    assert sub.dead_letter_policy.max_delivery_attempts == 5


def test_push_subscription_retries_with_backoff(provisioned: Provisioned, subscriber) -> None:
    sub = subscription(subscriber, provisioned, "PUSH_SUBSCRIPTION")

    assert sub.retry_policy.minimum_backoff == timedelta(seconds=10)
    assert sub.retry_policy.maximum_backoff == timedelta(seconds=600)


def test_push_subscription_waits_out_a_predictor_cold_start(
    provisioned: Provisioned, subscriber
) -> None:
    sub = subscription(subscriber, provisioned, "PUSH_SUBSCRIPTION")

    assert sub.topic.endswith(f"/topics/{provisioned.names['RIDES_TOPIC']}")
    assert sub.ack_deadline_seconds == 360


def test_push_subscription_starts_without_endpoint(provisioned: Provisioned, subscriber) -> None:
    # cloudbuild.yaml sets the endpoint once the predictor exists.
    assert (
        subscription(subscriber, provisioned, "PUSH_SUBSCRIPTION").push_config.push_endpoint == ""
    )


def test_dead_letter_subscription_never_expires(provisioned: Provisioned, subscriber) -> None:
    sub = subscription(subscriber, provisioned, "DEAD_LETTER_SUBSCRIPTION")

    assert sub.topic.endswith(f"/topics/{provisioned.names['DEAD_LETTER_TOPIC']}")
    assert "expiration_policy" in sub and sub.expiration_policy.ttl == timedelta(0)


def test_dead_letter_retention_is_its_own_setting(provisioned: Provisioned, subscriber) -> None:
    # The emulator refuses more than 7 days, so this run asks for 6 (the 31-day default is in
    # test_setup_plan.py); the others keep Pub/Sub's default of 7.
    dead = subscription(subscriber, provisioned, "DEAD_LETTER_SUBSCRIPTION")
    push = subscription(subscriber, provisioned, "PUSH_SUBSCRIPTION")

    assert dead.message_retention_duration == timedelta(days=6)
    assert push.message_retention_duration == timedelta(days=7)


def test_recorder_subscription_is_a_plain_pull_on_the_results_topic(
    provisioned: Provisioned, subscriber
) -> None:
    sub = subscription(subscriber, provisioned, "RECORDER_SUBSCRIPTION")

    assert sub.topic.endswith(f"/topics/{provisioned.names['RESULTS_TOPIC']}")
    # No filter: each result goes to one backend instance, whichever published the ride.
    assert sub.filter == ""
    assert sub.push_config.push_endpoint == ""
    assert sub.ack_deadline_seconds == 30
    assert "expiration_policy" in sub and sub.expiration_policy.ttl == timedelta(0)
    assert sub.message_retention_duration == timedelta(days=7)
    assert sub.dead_letter_policy.dead_letter_topic == ""


def test_second_run_changes_nothing(provisioned: Provisioned) -> None:
    assert len(changes(provisioned.runs[0])) == 6
    assert changes(provisioned.runs[1]) == []


def test_drifted_setting_is_restored_alone(provisioned: Provisioned, subscriber) -> None:
    name = subscriber.subscription_path(provisioned.project, provisioned.names["PUSH_SUBSCRIPTION"])
    subscriber.update_subscription(
        subscription={"name": name, "ack_deadline_seconds": 20},
        update_mask={"paths": ["ack_deadline_seconds"]},
    )

    run = run_script(SETUP, "--only", "pubsub", env=provisioned.env)

    assert run.returncode == 0, run.stderr
    assert [c.split()[:5] for c in changes(run)] == [
        ["gcloud", "pubsub", "subscriptions", "update", provisioned.names["PUSH_SUBSCRIPTION"]]
    ]
    assert "--ack-deadline=360" in changes(run)[0] and "--dead-letter" not in changes(run)[0]
    assert subscription(subscriber, provisioned, "PUSH_SUBSCRIPTION").ack_deadline_seconds == 360
