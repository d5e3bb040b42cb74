"""deploy/setup.sh --only secrets, run for real against a gcloud stand-in that records each call."""

import json
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import SETUP, run_script
from tests.kit.fake_gcloud import FakeGcloud

KEY_ID = "AKIA-test-8f3e2d"
SECRET_KEY = "s3cr3t/with+chars=and spaces"
MISSING = [(["secrets", "describe"], "", 1), (["secrets", "versions", "access"], "", 1)]


@pytest.fixture
def fake(tmp_path: Path) -> FakeGcloud:
    return FakeGcloud.install(tmp_path)


def env(fake: FakeGcloud, **extra: str) -> dict[str, str]:
    values = {"MLFLOW_AWS_ACCESS_KEY_ID": KEY_ID, "MLFLOW_AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    return fake.env(PROJECT_ID="demo-project", **(values | extra))


def test_new_secret_values_are_added_through_stdin(fake: FakeGcloud) -> None:
    fake.answer(MISSING)

    done = run_script(SETUP, "--only", "secrets", env=env(fake))

    assert done.returncode == 0, done.stderr
    added = {
        call["argv"][3]: call["stdin"]
        for call in fake.calls()
        if call["argv"][:3] == ["secrets", "versions", "add"]
    }
    assert added == {"mlflow-aws-access-key-id": KEY_ID, "mlflow-aws-secret-access-key": SECRET_KEY}


def test_secret_values_never_appear_in_arguments_or_output(fake: FakeGcloud) -> None:
    fake.answer(MISSING)

    done = run_script(SETUP, "--only", "secrets", env=env(fake))

    arguments = json.dumps(fake.argvs())
    for value in (KEY_ID, SECRET_KEY):
        assert value not in arguments
        assert value not in done.stdout + done.stderr


def test_unchanged_secret_gets_no_new_version(fake: FakeGcloud) -> None:
    fake.answer([(["secrets", "versions", "access"], KEY_ID, 0)])

    done = run_script(SETUP, "--only", "secrets", env=env(fake, MLFLOW_AWS_SECRET_ACCESS_KEY=""))

    assert done.returncode == 0, done.stderr
    assert [argv[:3] for argv in fake.argvs()] == [
        ["secrets", "describe", "mlflow-aws-access-key-id"],
        ["secrets", "versions", "access"],
        ["secrets", "describe", "mlflow-aws-secret-access-key"],
    ]


def test_changed_secret_gets_a_new_version(fake: FakeGcloud) -> None:
    fake.answer([(["secrets", "versions", "access"], "an-older-key", 0)])

    run_script(SETUP, "--only", "secrets", env=env(fake, MLFLOW_AWS_SECRET_ACCESS_KEY=""))

    assert ["secrets", "versions", "add", "mlflow-aws-access-key-id"] in [
        argv[:4] for argv in fake.argvs()
    ]
