"""deploy/setup.sh --only iam, run for real against a gcloud stand-in."""

import subprocess
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import SETUP, run_script
from tests.kit.fake_gcloud import FakeGcloud

BINDING = ["projects", "add-iam-policy-binding"]


@pytest.fixture
def fake(tmp_path: Path) -> FakeGcloud:
    return FakeGcloud.install(tmp_path)


def run_iam(fake: FakeGcloud) -> subprocess.CompletedProcess[str]:
    env = fake.env(PROJECT_ID="demo-project", PROJECT_NUMBER="123456789", RETRY_DELAY_S="0")
    return run_script(SETUP, "--only", "iam", env=env)


def test_grant_is_retried_while_a_new_account_propagates(fake: FakeGcloud) -> None:
    # IAM refuses a binding to a service account created moments ago, then accepts it.
    fake.answer([(BINDING, "", 1, 2)])

    done = run_iam(fake)

    assert done.returncode == 0, done.stderr
    # Six project-level grants, the first one tried twice more.
    assert [argv[:2] for argv in fake.argvs()].count(BINDING) == 6 + 2


def test_grant_that_keeps_failing_stops_setup(fake: FakeGcloud) -> None:
    fake.answer([(BINDING, "", 1)])

    done = run_iam(fake)

    assert done.returncode != 0
    assert [argv[:2] for argv in fake.argvs()].count(BINDING) == 5


def test_unreadable_project_number_stops_setup(fake: FakeGcloud) -> None:
    fake.answer([(["projects", "describe"], "", 1)])
    env = fake.env(PROJECT_ID="demo-project", RETRY_DELAY_S="0")

    done = run_script(SETUP, "--only", "iam", env=env)

    assert done.returncode == 1
    assert "cannot read the project number of demo-project" in done.stderr


ROLE_IDS = {"rideBackendResultsSubscriber": "backend", "ridePushSubscriptionUpdater": "deployer"}
BACKEND_ROLE = ["iam", "roles", "describe", "rideBackendResultsSubscriber"]
DEPLOYER_ROLE = ["iam", "roles", "describe", "ridePushSubscriptionUpdater"]
# gcloud lists a role's permissions separated by ';', in any order.
BACKEND_SAME = "pubsub.subscriptions.delete;pubsub.subscriptions.consume"
BACKEND_SAME += ";pubsub.subscriptions.create;pubsub.subscriptions.get"
DEPLOYER_SAME = "pubsub.subscriptions.update;pubsub.subscriptions.get"


@pytest.mark.parametrize(
    ("backend", "deployer", "updated"),
    [
        (BACKEND_SAME, DEPLOYER_SAME, []),
        ("pubsub.subscriptions.consume;pubsub.subscriptions.create", DEPLOYER_SAME, ["backend"]),
        (BACKEND_SAME, DEPLOYER_SAME + ";pubsub.subscriptions.delete", ["deployer"]),
    ],
    ids=["same-permissions-in-another-order", "backend-missing-one", "deployer-holding-more"],
)
def test_custom_roles_are_updated_only_when_their_permissions_differ(
    fake: FakeGcloud, backend: str, deployer: str, updated: list[str]
) -> None:
    fake.answer([(BACKEND_ROLE, backend, 0), (DEPLOYER_ROLE, deployer, 0)])

    assert run_iam(fake).returncode == 0
    updates = [argv[3] for argv in fake.argvs() if argv[:3] == ["iam", "roles", "update"]]
    assert [ROLE_IDS[role] for role in updates] == updated
