"""cloudbuild.yaml: Cloud Build's own schema, its substitutions, and the order of its steps."""

import importlib
import subprocess
from pathlib import Path

import pytest

from . import cloudbuild
from .conftest import offline_env
from .scripts import ROOT, config_defaults

NO_ACCOUNT = "ERROR: (gcloud.builds.submit) You do not currently have an active account selected."
# deploy/config.sh names for the substitutions that repeat its defaults.
CONFIG_SH_NAMES = {
    "_REGION": "REGION",
    "_AR_REPOSITORY": "AR_REPOSITORY",
    "_BACKEND_SERVICE": "BACKEND_SERVICE",
    "_PREDICTOR_SERVICE": "PREDICTOR_SERVICE",
    "_BACKEND_SA_ID": "BACKEND_SA_ID",
    "_PREDICTOR_SA_ID": "PREDICTOR_SA_ID",
    "_PUSH_INVOKER_SA_ID": "PUSH_INVOKER_SA_ID",
    "_BACKEND_PUSH_STREAM": "BACKEND_PUSH_STREAM",
    "_BACKEND_PULL_STREAM": "BACKEND_PULL_STREAM",
    "_DEAD_LETTER_TOPIC": "DEAD_LETTER_TOPIC",
    "_PUSH_SUBSCRIPTION": "PUSH_SUBSCRIPTION",
    "_SECRET_AWS_ACCESS_KEY_ID": "SECRET_AWS_ACCESS_KEY_ID",
    "_SECRET_AWS_SECRET_ACCESS_KEY": "SECRET_AWS_SECRET_ACCESS_KEY",
}


def submit(config: Path, gcloud_config: Path) -> subprocess.CompletedProcess[str]:
    """Run `gcloud builds submit --no-source`: it parses the config, then asks for an account."""
    env = offline_env(gcloud_config, CLOUDSDK_CORE_PROJECT="demo-project")
    return subprocess.run(
        ["gcloud", "builds", "submit", f"--config={config}", "--no-source"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_gcloud_accepts_the_config_and_stops_at_credentials(
    gcloud: str, gcloud_config: Path
) -> None:
    done = submit(cloudbuild.CONFIG, gcloud_config)

    assert done.returncode == 1
    assert done.stderr.startswith(NO_ACCOUNT), done.stderr


def test_gcloud_reports_a_schema_error_before_credentials(
    gcloud: str, gcloud_config: Path, tmp_path: Path
) -> None:
    # The check above can fail: a misspelt field is reported first.
    broken = tmp_path / "cloudbuild.yaml"
    broken.write_text(cloudbuild.CONFIG.read_text().replace("waitFor:", "waitfor:", 1))

    done = submit(broken, gcloud_config)

    assert f"interpreting {broken} as build config: .steps[1].waitfor: unused" in done.stderr


def test_every_reference_is_a_builtin_or_a_substitution() -> None:
    config = cloudbuild.load()
    defined = set(config["substitutions"]) | cloudbuild.BUILTINS

    used = {name for text in cloudbuild.strings(config) for name in cloudbuild.references(text)}

    assert used - defined == set()


def test_every_substitution_is_used() -> None:
    # Cloud Build rejects a build whose substitutions are not all used.
    config = cloudbuild.load()
    body = {k: v for k, v in config.items() if k != "substitutions"}

    used = {name for text in cloudbuild.strings(body) for name in cloudbuild.references(text)}

    assert set(config["substitutions"]) - used == set()


def test_names_match_deploy_config_defaults() -> None:
    defaults = config_defaults()

    substitutions = cloudbuild.load()["substitutions"]
    assert {k: substitutions[k] for k in CONFIG_SH_NAMES} == {
        k: defaults[v] for k, v in CONFIG_SH_NAMES.items()
    }


def test_images_build_in_parallel_after_the_tag_check() -> None:
    config = cloudbuild.load()

    for step_id in ("build-backend", "build-predictor"):
        assert cloudbuild.step(config, step_id)["waitFor"] == ["check-tag"]


def test_each_deploy_waits_only_for_its_own_image() -> None:
    config = cloudbuild.load()

    assert cloudbuild.step(config, "deploy-backend")["waitFor"] == ["push-backend"]
    assert cloudbuild.step(config, "deploy-predictor")["waitFor"] == ["push-predictor"]


def test_images_are_tagged_with_the_commit_by_default() -> None:
    config = cloudbuild.load()
    values = cloudbuild.values(config, PROJECT_ID="demo-project", COMMIT_SHA="0123abcd")

    images = [cloudbuild.substitute(image, values) for image in config["images"]]

    assert images == [
        "us-central1-docker.pkg.dev/demo-project/ride-duration/ride-backend:0123abcd",
        "us-central1-docker.pkg.dev/demo-project/ride-duration/ride-predictor:0123abcd",
    ]
    assert config["options"]["dynamicSubstitutions"] is True


@pytest.mark.parametrize(("tag", "code"), [("", 1), ("0123abcd", 0)])
def test_tag_check_fails_only_without_a_tag(tag: str, code: int) -> None:
    config = cloudbuild.load()
    check = cloudbuild.step(config, "check-tag")
    values = cloudbuild.values(config, PROJECT_ID="demo-project", COMMIT_SHA=tag)
    argv = [cloudbuild.substitute(arg, values) for arg in check["args"]]

    done = subprocess.run([check["entrypoint"], *argv], capture_output=True, text=True, check=False)

    assert done.returncode == code
    assert ("COMMIT_SHA=$(git rev-parse HEAD)" in done.stderr) is (code == 1)


@pytest.mark.parametrize(
    ("service", "substitution"),
    [("backend_service", "_BACKEND_CONCURRENCY"), ("predictor_service", "_PREDICTOR_CONCURRENCY")],
)
def test_concurrency_matches_gunicorn_threads(
    service: str, substitution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More concurrent requests than threads would queue inside gunicorn, out of Cloud Run's sight.
    monkeypatch.delenv("GUNICORN_THREADS", raising=False)
    conf = importlib.reload(importlib.import_module(f"{service}.gunicorn_conf"))

    assert int(cloudbuild.load()["substitutions"][substitution]) == conf.threads


def test_backend_is_public_and_runs_as_its_own_account() -> None:
    args = cloudbuild.backend_deploy_args()

    assert args[:3] == ["run", "deploy", "ride-backend"]
    assert "--allow-unauthenticated" in args
    assert "--service-account=ride-backend@demo-project.iam.gserviceaccount.com" in args


def test_backend_gets_its_topics_and_results_subscription_settings() -> None:
    env = next(a for a in cloudbuild.backend_deploy_args() if a.startswith("--set-env-vars="))

    assert dict(kv.split("=", 1) for kv in env.removeprefix("--set-env-vars=").split(",")) == {
        "PROJECT_ID": "demo-project",
        "BACKEND_PUSH_STREAM": "ride-data-push",
        "BACKEND_PULL_STREAM": "ride-duration-pull",
        "RESULT_TIMEOUT_S": "10",
        "RESULTS_SUBSCRIPTION_TTL_S": "86400",
        "LOG_LEVEL": "INFO",
    }


def test_backend_request_timeout_outlasts_its_wait_for_results() -> None:
    substitutions = cloudbuild.load()["substitutions"]

    assert int(substitutions["_BACKEND_REQUEST_TIMEOUT_S"]) > int(
        substitutions["_RESULT_TIMEOUT_S"]
    )
