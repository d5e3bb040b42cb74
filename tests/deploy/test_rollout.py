"""deploy/rollout_predictor.sh, fed the environment cloudbuild.yaml's deploy-predictor step sets."""

from pathlib import Path

import pytest

from tests.kit import cloudbuild
from tests.kit.deploy_scripts import (
    ROLLOUT,
    Plan,
    base_env,
    command,
    dry_run,
    env_vars,
    flag,
    run_script,
)
from tests.kit.fake_gcloud import FakeGcloud

PROJECT = "demo-project"
INVOKER = f"ride-push-invoker@{PROJECT}.iam.gserviceaccount.com"
URL = "https://ride-predictor-abc123-uc.a.run.app"
# The check before the deploy reads each secret version's state.
SECRETS_ENABLED = (["secrets", "versions", "describe"], "ENABLED", 0)


def step_env(**overrides: str) -> dict[str, str]:
    return cloudbuild.predictor_step_env(**overrides)


def with_tracking(**overrides: str) -> dict[str, str]:
    return step_env(_MLFLOW_TRACKING_URI="https://mlflow.example.com", **overrides)


def deploy_args(folder: Path, **pin: str) -> list[str]:
    """The deploy step's arguments, its model pinned as the pin-model step would (or `pin`)."""
    return cloudbuild.predictor_deploy_args(folder, **pin)


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    args = deploy_args(tmp_path_factory.mktemp("pin"))
    return dry_run(ROLLOUT, *args, env=base_env() | with_tracking())


def test_predictor_is_private_and_runs_as_its_own_account(plan: Plan) -> None:
    deploy = command(plan, "gcloud", "run", "deploy", "ride-predictor")

    assert "--no-allow-unauthenticated" in deploy
    assert flag(deploy, "service-account") == f"ride-predictor@{PROJECT}.iam.gserviceaccount.com"
    assert flag(deploy, "image").endswith("/ride-duration/ride-predictor:0123abcd")


def test_every_deploy_pins_the_invoker_check_and_internal_ingress(tmp_path: Path) -> None:
    # cloud-run-iam mode trusts claims whose signature Cloud Run checked: only with the check on.
    fake = FakeGcloud.install(tmp_path)
    fake.answer([(["run", "services", "describe"], URL, 0), SECRETS_ENABLED])

    assert (
        run_script(ROLLOUT, *deploy_args(tmp_path), env=fake.env() | with_tracking()).returncode
        == 0
    )

    deploys = [argv for argv in fake.argvs() if argv[:2] == ["run", "deploy"]]
    assert deploys and all("--invoker-iam-check" in argv for argv in deploys)
    assert all(flag(["gcloud", *argv], "ingress") == "internal" for argv in deploys)
    assert not [argv for argv in fake.argvs() if "--no-invoker-iam-check" in argv]


def test_first_deploy_pins_them_too(plan: Plan) -> None:
    deploy = command(plan, "gcloud", "run", "deploy", "ride-predictor")

    assert "--invoker-iam-check" in deploy and flag(deploy, "ingress") == "internal"


def test_aws_keys_come_from_secret_manager(plan: Plan) -> None:
    deploy = command(plan, "gcloud", "run", "deploy")

    assert flag(deploy, "set-secrets") == (
        "AWS_ACCESS_KEY_ID=mlflow-aws-access-key-id:latest,"
        "AWS_SECRET_ACCESS_KEY=mlflow-aws-secret-access-key:latest"
    )
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env_vars(deploy))


def test_traffic_waits_for_the_model_behind_readyz(plan: Plan) -> None:
    deploy = command(plan, "gcloud", "run", "deploy")

    assert "httpGet.path=/readyz" in flag(deploy, "startup-probe").split(",")
    assert "--cpu-boost" in deploy


def test_model_and_topics_come_from_substitutions_and_the_pin(tmp_path: Path) -> None:
    args = deploy_args(tmp_path, MODEL_URI="runs:/abc/model", MODEL_VERSION="run:abc")
    plan = dry_run(ROLLOUT, *args, env=base_env() | with_tracking(_MODEL_URI="runs:/abc/model"))

    assert env_vars(command(plan, "gcloud", "run", "deploy")) == {
        "PROJECT_ID": PROJECT,
        "MODEL_URI": "runs:/abc/model",
        "MODEL_VERSION": "run:abc",
        "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
        "RESULTS_TOPIC": "ride-duration-pull",
        "DEAD_LETTER_TOPIC": "ride-data-dead-letter",
        "LOG_LEVEL": "INFO",
        "TRACE_EXPORTER": "cloud",
        "TRACE_SAMPLE_RATIO": "0.1",
        "PUSH_SERVICE_ACCOUNT": INVOKER,
    }


def test_s3_endpoint_is_set_only_when_given(tmp_path: Path) -> None:
    minio = with_tracking(_MLFLOW_S3_ENDPOINT_URL="http://minio.internal:9000")
    plan = dry_run(ROLLOUT, *deploy_args(tmp_path), env=base_env() | minio)

    assert env_vars(command(plan, "gcloud", "run", "deploy"))["MLFLOW_S3_ENDPOINT_URL"] == (
        "http://minio.internal:9000"
    )


def test_registry_model_without_tracking_server_is_refused() -> None:
    done = run_script(ROLLOUT, "--dry-run", env=base_env() | step_env())

    assert done.returncode == 1
    assert "set MLFLOW_TRACKING_URI" in done.stderr


def test_s3_model_needs_no_tracking_server() -> None:
    env = base_env() | step_env(_MODEL_URI="s3://models/ride-duration/1")

    assert run_script(ROLLOUT, "--dry-run", env=env).returncode == 0


def test_push_invoker_may_invoke_the_predictor_and_nothing_else(plan: Plan) -> None:
    grants = [c for c in plan.commands if "add-iam-policy-binding" in c]

    assert grants == [
        [
            "gcloud",
            "run",
            "services",
            "add-iam-policy-binding",
            "ride-predictor",
            "--region=us-central1",
            f"--project={PROJECT}",
            f"--member=serviceAccount:{INVOKER}",
            "--role=roles/run.invoker",
        ]
    ]


def test_first_deploy_gives_the_new_url_to_the_app_and_the_push_subscription(
    tmp_path: Path,
) -> None:
    fake = FakeGcloud.install(tmp_path)
    # No service before the deploy, its URL after.
    fake.answer(
        [
            (["run", "services", "describe"], "", 1, 1),
            (["run", "services", "describe"], URL, 0),
            SECRETS_ENABLED,
        ]
    )

    done = run_script(ROLLOUT, *deploy_args(tmp_path), env=fake.env() | with_tracking())

    assert done.returncode == 0, done.stderr
    update, _grant, push = fake.argvs()[-3:]
    assert update[:4] == ["run", "services", "update", "ride-predictor"]
    assert f"--update-env-vars=PUSH_AUDIENCE={URL},PUSH_AUTH_MODE=cloud-run-iam" in update
    assert push[:4] == ["pubsub", "subscriptions", "update", "ride-data-push-sub"]
    assert {
        f"--push-endpoint={URL}",
        f"--push-auth-token-audience={URL}",
        f"--push-auth-service-account={INVOKER}",
    } <= set(push)


def test_later_deploys_set_the_audience_in_the_same_revision(tmp_path: Path) -> None:
    fake = FakeGcloud.install(tmp_path)
    fake.answer([(["run", "services", "describe"], URL, 0), SECRETS_ENABLED])

    done = run_script(ROLLOUT, *deploy_args(tmp_path), env=fake.env() | with_tracking())

    assert done.returncode == 0, done.stderr
    deploy = next(argv for argv in fake.argvs() if argv[:2] == ["run", "deploy"])
    assert env_vars(["gcloud", *deploy])["PUSH_AUDIENCE"] == URL
    assert env_vars(["gcloud", *deploy])["PUSH_AUTH_MODE"] == "cloud-run-iam"
    assert not [argv for argv in fake.argvs() if argv[:3] == ["run", "services", "update"]]


def test_the_predictor_exports_spans_sampled_as_the_build_says(tmp_path: Path) -> None:
    env = base_env() | with_tracking(_TRACE_SAMPLE_RATIO="0.5")
    plan = dry_run(ROLLOUT, *deploy_args(tmp_path), env=env)

    env = env_vars(command(plan, "gcloud", "run", "deploy"))
    assert (env["TRACE_EXPORTER"], env["TRACE_SAMPLE_RATIO"]) == ("cloud", "0.5")


def test_the_revision_serves_the_pinned_folder_and_version(plan: Plan) -> None:
    deployed = env_vars(command(plan, "gcloud", "run", "deploy"))

    assert {k: deployed[k] for k in ("MODEL_URI", "MODEL_VERSION")} == cloudbuild.PINNED_MODEL


def test_an_alias_is_checked_but_never_deployed_unpinned() -> None:
    env = base_env() | with_tracking()

    assert run_script(ROLLOUT, "--check", "--dry-run", env=env).returncode == 0
    done = run_script(ROLLOUT, "--dry-run", env=env)
    assert done.returncode == 1
    assert "models:/ride-duration@production is an alias: pin it first" in done.stderr
    assert "gcloud run deploy" not in done.stdout


def test_a_missing_pin_deploys_nothing(tmp_path: Path) -> None:
    done = run_script(ROLLOUT, "--dry-run", f"--model-pin={tmp_path / 'none.env'}",
                      env=base_env() | with_tracking())  # fmt: skip

    assert done.returncode == 1 and "no model pin at" in done.stderr
    assert "gcloud run deploy" not in done.stdout
