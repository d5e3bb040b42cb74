"""The deployer's Cloud Run role holds what the build's gcloud calls need, and nothing more."""

from pathlib import Path

from tests.kit import cloudbuild
from tests.kit.deploy_scripts import ROLLOUT, SETUP, base_env, dry_run, flag, run_script
from tests.kit.fake_gcloud import FakeGcloud

# What each Cloud Run command of the build needs: the service read before and after (deploy and
# update wait on its conditions, and report a failed revision), created or replaced, and its
# IAM policy read and written by the access flags and by add-iam-policy-binding.
# https://cloud.google.com/run/docs/reference/iam/permissions
# https://cloud.google.com/run/docs/authenticating/public ("Required roles")
DEPLOY = {
    "run.services.get",
    "run.services.create",
    "run.services.update",
    "run.operations.get",
    "run.revisions.get",
    "run.revisions.list",
}
IAM_POLICY = {"run.services.getIamPolicy", "run.services.setIamPolicy"}
ACCESS_FLAGS = (
    "--allow-unauthenticated",
    "--no-allow-unauthenticated",
    "--invoker-iam-check",
    "--no-invoker-iam-check",
)
NEEDS = {
    ("run", "deploy"): DEPLOY,
    ("run", "services", "describe"): {"run.services.get"},
    ("run", "services", "update"): DEPLOY - {"run.services.create"},
    ("run", "services", "add-iam-policy-binding"): IAM_POLICY,
}


def needed(argv: list[str]) -> set[str]:
    key = next(k for k in NEEDS if tuple(argv[: len(k)]) == k)  # unknown: StopIteration
    extra = IAM_POLICY if any(a in ACCESS_FLAGS for a in argv) else set()
    return NEEDS[key] | extra


def build_run_calls(tmp_path: Path) -> list[list[str]]:
    """Every `gcloud run` call of a build: the backend step, a first and a later predictor."""
    calls = [cloudbuild.backend_deploy_args()]
    env = cloudbuild.predictor_step_env(_MLFLOW_TRACKING_URI="https://mlflow.example.com")
    for name, rules in {
        "first": [(["run", "services", "describe"], "", 1, 1)],
        "later": [],
    }.items():
        fake = FakeGcloud.install(tmp_path / name)
        url = (["run", "services", "describe"], "https://ride-predictor-x.a.run.app", 0)
        fake.answer([*rules, url, (["secrets", "versions", "describe"], "ENABLED", 0)])
        args = cloudbuild.predictor_deploy_args(tmp_path / name)
        assert run_script(ROLLOUT, *args, env=fake.env() | env).returncode == 0
        calls += fake.argvs()
    return [argv for argv in calls if argv[0] == "run"]


def role_permissions() -> set[str]:
    plan = dry_run(SETUP, "--only", "iam", env=base_env(PROJECT_ID="p", PROJECT_NUMBER="1"))
    create = next(
        c for c in plan.commands if c[1:5] == ["iam", "roles", "create", "rideServiceDeployer"]
    )
    return set(flag(create, "permissions").split(","))


def test_the_role_is_exactly_what_the_builds_run_calls_need(tmp_path: Path) -> None:
    calls = build_run_calls(tmp_path)
    kinds = {tuple(argv[:3]) for argv in calls}

    assert {("run", "deploy", "ride-backend"), ("run", "services", "update")} <= kinds
    assert set().union(*map(needed, calls)) == role_permissions()


def test_the_role_cannot_delete_a_service() -> None:
    assert not {p for p in role_permissions() if p.endswith(".delete")}
