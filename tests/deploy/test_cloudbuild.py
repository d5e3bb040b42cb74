"""cloudbuild.yaml: Cloud Build's own schema, its substitutions, and the order of its steps."""

import importlib
import re
import subprocess
from pathlib import Path

import pytest

from tests.kit import cloudbuild
from tests.kit.deploy_scripts import ROOT, config_defaults, offline_env

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
    "_RIDES_TOPIC": "RIDES_TOPIC",
    "_RESULTS_TOPIC": "RESULTS_TOPIC",
    "_DEAD_LETTER_TOPIC": "DEAD_LETTER_TOPIC",
    "_PUSH_SUBSCRIPTION": "PUSH_SUBSCRIPTION",
    "_SECRET_AWS_ACCESS_KEY_ID": "SECRET_AWS_ACCESS_KEY_ID",
    "_SECRET_AWS_SECRET_ACCESS_KEY": "SECRET_AWS_SECRET_ACCESS_KEY",
    "_PUSH_ACK_DEADLINE_S": "PUSH_ACK_DEADLINE_S",
    "_FIRESTORE_DATABASE": "FIRESTORE_DATABASE",
    "_RIDES_COLLECTION": "RIDES_COLLECTION",
    "_RIDE_RETENTION_DAYS": "RIDE_RETENTION_DAYS",
    "_RECORDER_SUBSCRIPTION": "RECORDER_SUBSCRIPTION",
}
# A manual `gcloud builds submit`: Cloud Build sets BUILD_ID, and no COMMIT_SHA.
MANUAL_BUILD = {"PROJECT_ID": "demo-project", "BUILD_ID": "4d7f0a52-9c3e-4b61-8f2a-0e5b7c9d1a36"}
# Built-in substitutions `gcloud builds submit --substitutions` accepts (`gcloud builds submit
# --help`, SDK 528); every other key must be a user substitution the template defines.
SUBMITTABLE_BUILTINS = {"REPO_NAME", "BRANCH_NAME", "TAG_NAME", "REVISION_ID", "COMMIT_SHA"}
SUBMITTABLE_BUILTINS |= {"SHORT_SHA"}
DOCKER_BUILDER = "gcr.io/cloud-builders/docker:20.10.24"


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

    assert f"interpreting {broken} as build config: .steps[0].waitfor: unused" in done.stderr


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


def test_check_pin_and_both_builds_start_at_once() -> None:
    config = cloudbuild.load()

    for step_id in ("check", "pin-model", "build-backend", "build-predictor"):
        assert cloudbuild.step(config, step_id)["waitFor"] == ["-"]


def test_neither_service_deploys_before_the_check_the_pin_and_both_images() -> None:
    config = cloudbuild.load()

    for step_id in ("deploy-backend", "deploy-predictor"):
        assert cloudbuild.step(config, step_id)["waitFor"] == [
            "check",
            "pin-model",
            "push-backend",
            "push-predictor",
        ]


def test_check_runs_the_predictor_rollout_in_check_mode_with_its_environment() -> None:
    config = cloudbuild.load()
    check, deploy = cloudbuild.step(config, "check"), cloudbuild.step(config, "deploy-predictor")

    assert check["args"] == ["deploy/rollout_predictor.sh", "--check"]
    assert deploy["args"][0] == "deploy/rollout_predictor.sh"
    assert check["env"] == deploy["env"]


def test_the_predictor_deploys_the_model_the_pin_step_wrote() -> None:
    config = cloudbuild.load()
    pin, deploy = cloudbuild.step(config, "pin-model"), cloudbuild.step(config, "deploy-predictor")

    assert pin["args"] == ["deploy/pin_model.sh", "model-pin.env"]
    assert deploy["args"][1:] == ["--model-pin=model-pin.env"]
    assert {"MODEL_URI=${_MODEL_URI}", "MLFLOW_TRACKING_URI=${_MLFLOW_TRACKING_URI}"} <= set(
        pin["env"]
    )


def test_images_are_tagged_with_the_commit_by_default() -> None:
    config = cloudbuild.load()
    values = cloudbuild.values(config, PROJECT_ID="demo-project", COMMIT_SHA="0123abcd")

    images = [cloudbuild.substitute(image, values) for image in config["images"]]

    assert images == [
        "us-central1-docker.pkg.dev/demo-project/ride-duration/ride-backend:0123abcd",
        "us-central1-docker.pkg.dev/demo-project/ride-duration/ride-predictor:0123abcd",
    ]
    assert config["options"]["dynamicSubstitutions"] is True


def test_a_manual_build_names_every_image_with_a_tag() -> None:
    # Cloud Build validates `images:` when the build is submitted: an empty tag fails it there.
    config = cloudbuild.load()
    values = cloudbuild.values(config, **MANUAL_BUILD)

    references = cloudbuild.image_references(config, values)

    invalid = [r for r in references if not cloudbuild.TAGGED_REFERENCE.fullmatch(r)]
    assert invalid == []
    assert len(references) == 9
    assert {r.rpartition(":")[2] for r in references} == {f"manual-{MANUAL_BUILD['BUILD_ID']}"}


def test_a_tag_passed_to_the_build_names_every_image() -> None:
    config = cloudbuild.load()
    values = cloudbuild.values(config, **MANUAL_BUILD) | {"_TAG": "9f8e7d6"}

    references = cloudbuild.image_references(config, values)

    assert {r.rpartition(":")[2] for r in references} == {"9f8e7d6"}


def submitted_keys(text: str) -> set[str]:
    """The keys every `--substitutions` in `text` passes."""
    lists = re.findall(r"--substitutions[= ](?:\"([^\"]*)\"|([^\s`]+))", text)
    return {key for quoted, bare in lists for key in re.findall(r"(?:^|,)(\w+)=", quoted or bare)}


@pytest.mark.parametrize("document", ["docs/deploy.md", "README.md", "cloudbuild.yaml"])
def test_documented_substitutions_are_ones_the_build_accepts(document: str) -> None:
    keys = submitted_keys((ROOT / document).read_text())

    accepted = set(cloudbuild.load()["substitutions"]) | SUBMITTABLE_BUILTINS
    assert keys - accepted == set()


def test_documentation_passes_a_tag_and_a_tracking_server() -> None:
    assert {"_TAG", "_MLFLOW_TRACKING_URI"} <= submitted_keys((ROOT / "docs/deploy.md").read_text())


def test_every_docker_step_uses_the_pinned_builder() -> None:
    config = cloudbuild.load()
    values = cloudbuild.values(config, **MANUAL_BUILD)

    builders = {cloudbuild.substitute(s["name"], values) for s in config["steps"]}

    docker = {b for b in builders if "cloud-builders/docker" in b}
    assert docker == {DOCKER_BUILDER}
    build_predictor = cloudbuild.step(config, "build-predictor")
    assert cloudbuild.substitute(build_predictor["name"], values) == DOCKER_BUILDER


def test_every_gcloud_step_uses_the_release_these_tests_check(
    gcloud: str, gcloud_config: Path
) -> None:
    config = cloudbuild.load()
    values = cloudbuild.values(config, **MANUAL_BUILD)
    installed = subprocess.run(
        [gcloud, "version", '--format=value("Google Cloud SDK")'],
        env=offline_env(gcloud_config, CLOUDSDK_CORE_PROJECT="demo-project"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()

    builders = {cloudbuild.substitute(s["name"], values) for s in config["steps"]}

    gcloud_images = {b for b in builders if "cloudsdktool" in b}
    assert gcloud_images == {f"gcr.io/google.com/cloudsdktool/google-cloud-cli:{installed}-slim"}


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


def test_one_switch_deploys_the_backend_private() -> None:
    args = cloudbuild.backend_deploy_args(_BACKEND_ACCESS="--no-allow-unauthenticated")

    assert "--no-allow-unauthenticated" in args and "--allow-unauthenticated" not in args


@pytest.mark.parametrize("access", ["--allow-unauthenticated", "--no-allow-unauthenticated"])
def test_the_backend_keeps_the_invoker_check_on_either_way(access: str) -> None:
    args = cloudbuild.backend_deploy_args(_BACKEND_ACCESS=access)

    assert "--invoker-iam-check" in args and "--no-invoker-iam-check" not in args


@pytest.mark.parametrize(
    ("substitution", "value"),
    [("_BACKEND_MAX_INSTANCES", "10"), ("_PREDICTOR_MAX_INSTANCES", "10")],
)
def test_both_services_have_an_instance_cap_by_default(substitution: str, value: str) -> None:
    # The cap the docs turn into rides/s and dollars an hour.
    assert cloudbuild.load()["substitutions"][substitution] == value
    assert "--max-instances=10" in cloudbuild.backend_deploy_args()


def backend_env(**overrides: str) -> dict[str, str]:
    """The backend's --set-env-vars, expanded, as a dict."""
    args = cloudbuild.backend_deploy_args(**overrides)
    env = next(a for a in args if a.startswith("--set-env-vars="))
    return dict(kv.split("=", 1) for kv in env.removeprefix("--set-env-vars=").split(","))


def test_backend_gets_its_topics_results_subscription_and_ride_state_settings() -> None:
    assert backend_env() == {
        "PROJECT_ID": "demo-project",
        "RIDES_TOPIC": "ride-data-push",
        "RESULTS_TOPIC": "ride-duration-pull",
        "RESULT_TIMEOUT_S": "5",
        "RESULTS_SUBSCRIPTION_TTL_S": "86400",
        "RIDE_STORE": "firestore",
        "FIRESTORE_DATABASE": "(default)",
        "RIDES_COLLECTION": "rides",
        "RIDE_RETENTION_DAYS": "7",
        "RECORDER_SUBSCRIPTION": "ride-duration-pull-recorder",
        "LOG_LEVEL": "INFO",
        "TRACE_EXPORTER": "cloud",
        "TRACE_SAMPLE_RATIO": "0.1",
    }


def test_ride_state_settings_follow_their_substitutions() -> None:
    env = backend_env(
        _FIRESTORE_DATABASE="ride-state",
        _RIDES_COLLECTION="rides-v2",
        _RIDE_RETENTION_DAYS="30",
        _RECORDER_SUBSCRIPTION="results-recorder",
    )

    assert {k: env[k] for k in ("FIRESTORE_DATABASE", "RIDES_COLLECTION")} == {
        "FIRESTORE_DATABASE": "ride-state",
        "RIDES_COLLECTION": "rides-v2",
    }
    assert (env["RIDE_RETENTION_DAYS"], env["RECORDER_SUBSCRIPTION"]) == ("30", "results-recorder")
    # The deploy always stores rides in Firestore; `memory` holds them in one process only.
    assert env["RIDE_STORE"] == "firestore"


def test_the_predictor_gets_no_ride_state_settings() -> None:
    # Only the backend reads and writes rides; the predictor publishes results.
    env = cloudbuild.predictor_step_env()

    assert not {"RIDE_STORE", "FIRESTORE_DATABASE", "RECORDER_SUBSCRIPTION"} & set(env)


def test_backend_keeps_its_cpu_between_requests() -> None:
    # Its result listener holds a StreamingPull open between requests.
    assert "--no-cpu-throttling" in cloudbuild.backend_deploy_args()


def test_backend_request_timeout_outlasts_its_wait_for_results() -> None:
    substitutions = cloudbuild.load()["substitutions"]

    assert int(substitutions["_BACKEND_REQUEST_TIMEOUT_S"]) > int(
        substitutions["_RESULT_TIMEOUT_S"]
    )
