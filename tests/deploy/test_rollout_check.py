"""deploy/rollout_predictor.sh --check, the build's first step, and the rules it shares with the
deploy: the model's source, the secrets --set-secrets names, and a push deadline for cold starts.
"""

from pathlib import Path

import pytest

from predictor_service.config import MODEL_INPUTS
from tests.kit import cloudbuild
from tests.kit.deploy_scripts import (
    ROLLOUT,
    base_env,
    command,
    config_defaults,
    dry_run,
    flag,
    run_script,
)
from tests.kit.fake_gcloud import FakeGcloud

TRACKING = {"_MLFLOW_TRACKING_URI": "https://mlflow.example.com"}
SECRET_VERSION = ["secrets", "versions", "describe"]
# Cloud Run lets a service's startup probe run for at most 240 s.
# https://cloud.google.com/run/docs/configuring/healthchecks
MAX_STARTUP_PROBE_S = 240


@pytest.fixture
def fake(tmp_path: Path) -> FakeGcloud:
    return FakeGcloud.install(tmp_path)


def check(fake: FakeGcloud, **substitutions: str):
    """Run the check step as cloudbuild.yaml does, against the gcloud stand-in."""
    env = fake.env() | cloudbuild.predictor_step_env(**substitutions)
    return run_script(ROLLOUT, "--check", env=env)


def secret_checks(fake: FakeGcloud) -> list[list[str]]:
    return [argv for argv in fake.argvs() if argv[:3] == SECRET_VERSION]


def test_check_reads_each_secret_version_and_changes_nothing(fake: FakeGcloud) -> None:
    fake.answer([(SECRET_VERSION, "ENABLED\n", 0)])

    done = check(fake, **TRACKING)

    assert done.returncode == 0, done.stderr
    assert fake.argvs() == secret_checks(fake)
    assert [(argv[3], flag(argv, "secret")) for argv in fake.argvs()] == [
        ("latest", "mlflow-aws-access-key-id"),
        ("latest", "mlflow-aws-secret-access-key"),
    ]


def test_pinned_secret_versions_are_the_ones_checked(fake: FakeGcloud) -> None:
    fake.answer([(SECRET_VERSION, "ENABLED", 0)])

    check(fake, **TRACKING, _AWS_ACCESS_KEY_ID_VERSION="3", _AWS_SECRET_ACCESS_KEY_VERSION="4")

    assert [argv[3] for argv in secret_checks(fake)] == ["3", "4"]


@pytest.mark.parametrize(("stdout", "code"), [("", 1), ("DISABLED", 0), ("DESTROYED", 0)])
def test_secret_without_an_enabled_version_stops_the_build(
    fake: FakeGcloud, stdout: str, code: int
) -> None:
    fake.answer(
        [
            (SECRET_VERSION + ["latest", "--secret=mlflow-aws-access-key-id"], stdout, code),
            (SECRET_VERSION, "ENABLED", 0),
        ]
    )

    done = check(fake, **TRACKING)

    assert done.returncode == 1
    assert "secret mlflow-aws-access-key-id has no enabled version 'latest'" in done.stderr
    assert "mlflow-aws-secret-access-key" not in done.stderr


def test_registry_model_without_tracking_server_stops_the_build(fake: FakeGcloud) -> None:
    fake.answer([(SECRET_VERSION, "ENABLED", 0)])

    done = check(fake)

    assert done.returncode == 1
    assert "MODEL_URI=models:/ride-duration@production is resolved by an MLflow" in done.stderr


@pytest.mark.parametrize(
    "substitutions",
    [
        {"_MODEL_URI": "/app/model", "_MODEL_DIR": "MODEL_FOLDER"},
        {**TRACKING, "_MODEL_NEEDS_S3_KEYS": "false"},
    ],
    ids=["model-baked-into-the-image", "artifacts-served-by-the-tracking-server"],
)
def test_model_without_s3_keys_needs_no_secret(
    fake: FakeGcloud, model_folder: Path, substitutions: dict[str, str]
) -> None:
    fake.answer([(SECRET_VERSION, "", 1)])
    given = {k: str(model_folder) if v == "MODEL_FOLDER" else v for k, v in substitutions.items()}

    done = check(fake, **given)

    assert done.returncode == 0, done.stderr
    assert secret_checks(fake) == []


def test_path_in_the_image_needs_a_baked_model(fake: FakeGcloud) -> None:
    done = check(fake, _MODEL_URI="/app/model")

    assert done.returncode == 1
    assert "MODEL_URI=/app/model is a path in the image: bake a model there" in done.stderr


def test_baked_folder_must_hold_an_mlflow_model(fake: FakeGcloud, tmp_path: Path) -> None:
    done = check(fake, _MODEL_URI="/app/model", _MODEL_DIR=str(tmp_path / "empty"))

    assert done.returncode == 1
    assert "holds no MLmodel file" in done.stderr


def test_a_model_input_the_predictor_does_not_know_stops_the_build(fake: FakeGcloud) -> None:
    done = check(fake, **TRACKING, _MODEL_INPUT="raw", _MODEL_NEEDS_S3_KEYS="false")

    assert done.returncode == 1
    assert "MODEL_INPUT=raw: use course, ride or features" in done.stderr


@pytest.mark.parametrize("model_input", ["", *MODEL_INPUTS])
def test_every_model_input_the_predictor_knows_passes(fake: FakeGcloud, model_input: str) -> None:
    done = check(fake, **TRACKING, _MODEL_INPUT=model_input, _MODEL_NEEDS_S3_KEYS="false")

    assert done.returncode == 0, done.stderr


def test_every_problem_is_reported_at_once(fake: FakeGcloud) -> None:
    fake.answer([(SECRET_VERSION, "", 1)])

    done = check(fake, _PUSH_ACK_DEADLINE_S="60", _MODEL_NEEDS_S3_KEYS="maybe")

    assert done.returncode == 1
    problems = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(problems) == 5, done.stderr
    assert "PUSH_ACK_DEADLINE_S=60: use 300-600 s" in done.stderr


@pytest.mark.parametrize("deadline", ["299", "601", "5m"])
def test_push_deadline_that_cannot_cover_a_cold_start_is_refused(
    fake: FakeGcloud, deadline: str
) -> None:
    fake.answer([(SECRET_VERSION, "ENABLED", 0)])

    done = check(fake, **TRACKING, _PUSH_ACK_DEADLINE_S=deadline)

    assert done.returncode == 1
    assert f"PUSH_ACK_DEADLINE_S={deadline}: use 300-600 s" in done.stderr


def test_a_failed_check_deploys_nothing(fake: FakeGcloud, tmp_path: Path) -> None:
    fake.answer([(SECRET_VERSION, "", 1)])
    env = fake.env() | cloudbuild.predictor_step_env(**TRACKING)

    done = run_script(ROLLOUT, *cloudbuild.predictor_deploy_args(tmp_path), env=env)

    assert done.returncode == 1
    assert fake.argvs() == secret_checks(fake)


def test_push_deadline_and_request_timeout_move_together(tmp_path: Path) -> None:
    env = cloudbuild.predictor_step_env(**TRACKING, _PUSH_ACK_DEADLINE_S="420")

    plan = dry_run(ROLLOUT, *cloudbuild.predictor_deploy_args(tmp_path), env=base_env() | env)

    assert flag(command(plan, "gcloud", "run", "deploy"), "timeout") == "420s"
    push = command(plan, "gcloud", "pubsub", "subscriptions", "update")
    assert flag(push, "ack-deadline") == "420"


def test_default_push_deadline_covers_the_longest_startup_probe(tmp_path: Path) -> None:
    env = base_env() | cloudbuild.predictor_step_env(**TRACKING)
    plan = dry_run(ROLLOUT, *cloudbuild.predictor_deploy_args(tmp_path), env=env)
    probe = dict(
        item.split("=", 1)
        for item in flag(command(plan, "gcloud", "run", "deploy"), "startup-probe").split(",")
    )
    deadline = int(config_defaults()["PUSH_ACK_DEADLINE_S"])

    probe_s = int(probe["periodSeconds"]) * int(probe["failureThreshold"])
    assert int(probe.get("initialDelaySeconds", 0)) == 0
    assert probe_s == MAX_STARTUP_PROBE_S
    # A cold start is the probe plus what comes before it and the prediction; Pub/Sub's ack
    # deadline is at most 600 s.
    assert probe_s + 60 <= deadline <= 600


def test_model_without_s3_keys_gets_no_secrets_and_drops_old_ones(tmp_path: Path) -> None:
    env = cloudbuild.predictor_step_env(**TRACKING, _MODEL_NEEDS_S3_KEYS="false")
    # a tracking server that serves the artifacts itself: the pin is the version, through MLflow
    pin = {"MODEL_URI": "models:/ride-duration/3", "MODEL_VERSION": "ride-duration/3"}
    args = cloudbuild.predictor_deploy_args(tmp_path, **pin)

    deploy = command(dry_run(ROLLOUT, *args, env=base_env() | env), "gcloud", "run", "deploy")

    assert "--clear-secrets" in deploy
    assert not [arg for arg in deploy if arg.startswith("--set-secrets")]


@pytest.mark.parametrize("access", ["--allow-unauthenticated", "--no-allow-unauthenticated"])
def test_check_accepts_both_backend_access_settings(fake: FakeGcloud, access: str) -> None:
    fake.answer([(SECRET_VERSION, "ENABLED\n", 0)])

    assert check(fake, _BACKEND_ACCESS=access, **TRACKING).returncode == 0


def test_check_refuses_any_other_backend_access(fake: FakeGcloud) -> None:
    fake.answer([(SECRET_VERSION, "ENABLED\n", 0)])

    done = check(fake, _BACKEND_ACCESS="private", **TRACKING)

    assert done.returncode == 1
    assert "_BACKEND_ACCESS=private: use --allow-unauthenticated (public)" in done.stderr
