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
RUN_ROLE = ["iam", "roles", "describe", "rideServiceDeployer"]
# gcloud lists a role's permissions separated by ';', in any order; describe is asked for
# "deleted|permissions".
BACKEND_SAME = "|pubsub.subscriptions.delete;pubsub.subscriptions.consume"
BACKEND_SAME += ";pubsub.subscriptions.create;pubsub.subscriptions.get"
DEPLOYER_SAME = "|pubsub.subscriptions.update;pubsub.subscriptions.get"
RUN_SAME = "|run.services.create;run.services.get;run.services.update;run.services.getIamPolicy"
RUN_SAME += ";run.services.setIamPolicy;run.operations.get;run.revisions.get;run.revisions.list"


@pytest.mark.parametrize(
    ("backend", "deployer", "updated"),
    [
        (BACKEND_SAME, DEPLOYER_SAME, []),
        ("|pubsub.subscriptions.consume;pubsub.subscriptions.create", DEPLOYER_SAME, ["backend"]),
        (BACKEND_SAME, DEPLOYER_SAME + ";pubsub.subscriptions.delete", ["deployer"]),
    ],
    ids=["same-permissions-in-another-order", "backend-missing-one", "deployer-holding-more"],
)
def test_custom_roles_are_updated_only_when_their_permissions_differ(
    fake: FakeGcloud, backend: str, deployer: str, updated: list[str]
) -> None:
    fake.answer([(BACKEND_ROLE, backend, 0), (DEPLOYER_ROLE, deployer, 0), (RUN_ROLE, RUN_SAME, 0)])

    assert run_iam(fake).returncode == 0
    updates = [argv[3] for argv in fake.argvs() if argv[:3] == ["iam", "roles", "update"]]
    assert [ROLE_IDS[role] for role in updates] == updated


def test_a_deleted_custom_role_is_undeleted_and_repaired(fake: FakeGcloud) -> None:
    # A deleted role answers describe for 7 days, marked deleted; setup brings it back as it was
    # meant to be, and says so.
    drifted = "True|pubsub.subscriptions.get"
    fake.answer(
        [(BACKEND_ROLE, drifted, 0), (DEPLOYER_ROLE, DEPLOYER_SAME, 0), (RUN_ROLE, RUN_SAME, 0)]
    )

    done = run_iam(fake)

    assert done.returncode == 0, done.stderr
    changed = [
        argv[:4] for argv in fake.argvs() if argv[:2] == ["iam", "roles"] and argv[2] != "describe"
    ]
    assert changed == [
        ["iam", "roles", "undelete", "rideBackendResultsSubscriber"],
        ["iam", "roles", "update", "rideBackendResultsSubscriber"],
    ]
    assert "custom role rideBackendResultsSubscriber was deleted: undeleting it" in done.stderr
    assert "permissions set to pubsub.subscriptions.consume," in done.stderr


def test_a_role_in_place_is_left_alone(fake: FakeGcloud) -> None:
    fake.answer(
        [
            (BACKEND_ROLE, BACKEND_SAME, 0),
            (DEPLOYER_ROLE, DEPLOYER_SAME, 0),
            (RUN_ROLE, RUN_SAME, 0),
        ]
    )

    assert run_iam(fake).returncode == 0
    assert not [a for a in fake.argvs() if a[:2] == ["iam", "roles"] and a[2] != "describe"]


TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"
AGENT = "serviceAccount:service-123456789@gcp-sa-pubsub.iam.gserviceaccount.com"
INVOKER = "ride-push-invoker@demo-project.iam.gserviceaccount.com"


def token_creator_calls(fake: FakeGcloud) -> list[list[str]]:
    return [a for a in fake.argvs() if f"--role={TOKEN_CREATOR}" in a]


def run_with_project_created(fake: FakeGcloud, created: str, policy: str = ""):
    fake.answer(
        [
            (["projects", "describe", "demo-project", "--format=value(createTime)"], created, 0),
            (["iam", "service-accounts", "get-iam-policy"], policy, 0),
        ]
    )
    return run_iam(fake)


def test_an_agent_from_before_april_2021_may_mint_push_tokens(fake: FakeGcloud) -> None:
    assert run_with_project_created(fake, "2019-05-02T10:00:00.000Z").returncode == 0

    [grant] = token_creator_calls(fake)
    assert grant[:5] == [
        "iam",
        "service-accounts",
        "add-iam-policy-binding",
        INVOKER,
        f"--member={AGENT}",
    ]


def test_a_newer_agent_gets_no_token_creator_role(fake: FakeGcloud) -> None:
    assert run_with_project_created(fake, "2023-01-09T10:00:00.000Z").returncode == 0

    assert token_creator_calls(fake) == []


def test_a_token_creator_grant_no_longer_needed_is_removed(fake: FakeGcloud) -> None:
    done = run_with_project_created(fake, "2023-01-09T10:00:00.000Z", f"{TOKEN_CREATOR}|{AGENT}\n")

    assert done.returncode == 0
    [removal] = token_creator_calls(fake)
    assert removal[:4] == ["iam", "service-accounts", "remove-iam-policy-binding", INVOKER]
    assert "no longer needs roles/iam.serviceAccountTokenCreator" in done.stderr
