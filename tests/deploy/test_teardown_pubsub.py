"""deploy/teardown.sh --only pubsub, run for real through gcloud against the Pub/Sub emulator."""

import uuid
from collections.abc import Iterator

import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1

from devstack.emulator import Emulator
from tests.kit.deploy_scripts import SETUP, TEARDOWN, emulator_pubsub_names_and_env, run_script

pytestmark = [pytest.mark.emulator, pytest.mark.slow]


@pytest.fixture
def clients(
    deploy_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", deploy_emulator.address)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    yield publisher, subscriber
    subscriber.close()


def test_teardown_deletes_every_subscription_and_topic_and_a_second_run_is_harmless(
    gcloud: str, deploy_emulator: Emulator, clients, tmp_path
) -> None:
    publisher, subscriber = clients
    project = deploy_emulator.project
    names, env = emulator_pubsub_names_and_env(deploy_emulator.address, project, tmp_path)
    suffix = uuid.uuid4().hex[:6]
    assert run_script(SETUP, "--only", "pubsub", env=env).returncode == 0
    results = publisher.topic_path(project, names["RESULTS_TOPIC"])
    # Two backend processes that crashed, leaving their own filtered results subscriptions,
    # and a topic and subscription that are somebody else's.
    leftovers = [f"{names['RESULTS_TOPIC']}-{uuid.uuid4().hex[:16]}-{n}" for n in (1, 2)]
    for name in leftovers:
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(project, name),
                "topic": results,
                "filter": f'attributes.reply_to = "{name}"',
            }
        )
    other_topic = publisher.create_topic(name=publisher.topic_path(project, f"other-{suffix}"))
    other = subscriber.subscription_path(project, f"other-sub-{suffix}")
    subscriber.create_subscription(request={"name": other, "topic": other_topic.name})

    runs = [run_script(TEARDOWN, "--yes", "--only", "pubsub", env=env) for _ in range(2)]

    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    ours = [
        names[k] for k in ("PUSH_SUBSCRIPTION", "DEAD_LETTER_SUBSCRIPTION", "RECORDER_SUBSCRIPTION")
    ]
    for name in ours + leftovers:
        with pytest.raises(exceptions.NotFound):
            subscriber.get_subscription(subscription=subscriber.subscription_path(project, name))
    for key in ("RIDES_TOPIC", "RESULTS_TOPIC", "DEAD_LETTER_TOPIC"):
        with pytest.raises(exceptions.NotFound):
            publisher.get_topic(topic=publisher.topic_path(project, names[key]))
    assert subscriber.get_subscription(subscription=other).name == other
    deletes = [line for line in runs[0].stderr.splitlines() if line.startswith("+ ")]
    assert len(deletes) == 5 + 3
    assert not [line for line in runs[1].stderr.splitlines() if line.startswith("+ ")]
