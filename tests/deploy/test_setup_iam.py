"""deploy/setup.sh --only iam, run for real against a gcloud stand-in."""

import subprocess
from pathlib import Path

import pytest

from .fake_gcloud import FakeGcloud
from .scripts import SETUP, run_script

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
    assert [argv[:2] for argv in fake.argvs()].count(BINDING) == 3 + 2


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


SAME = "pubsub.subscriptions.delete;pubsub.subscriptions.consume;pubsub.subscriptions.create"
FEWER = "pubsub.subscriptions.consume;pubsub.subscriptions.create"


@pytest.mark.parametrize(
    ("current", "updated"),
    [(SAME, False), (FEWER, True)],
    ids=["same-permissions-in-another-order", "missing-permission"],
)
def test_backend_role_is_updated_only_when_its_permissions_differ(
    fake: FakeGcloud, current: str, updated: bool
) -> None:
    fake.answer([(["iam", "roles", "describe"], current, 0)])

    assert run_iam(fake).returncode == 0
    assert (["iam", "roles", "update"] in [argv[:3] for argv in fake.argvs()]) is updated
