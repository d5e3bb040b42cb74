"""deploy/ship_model.sh: a candidate revision beside production, its shadow, and the switch."""

import json
import subprocess
import sys

import pytest

from tests.kit.deploy_scripts import (
    ROOT,
    SHIP_MODEL,
    Plan,
    base_env,
    command,
    dry_run,
    flag,
    run_script,
)
from tests.kit.fake_gcloud import FakeGcloud

PROJECT = "demo-project"
URL = "https://ride-predictor-PROJECT_NUMBER.us-central1.run.app"
TAG_URL = "https://candidate---ride-predictor-PROJECT_NUMBER.us-central1.run.app/"


def ship(step: str, **env: str) -> Plan:
    extra = {"PROJECT_ID": PROJECT, "IMAGE": "img", "MODEL_URI": "models:/ride-duration/2"}
    return dry_run(SHIP_MODEL, step, env=base_env(PYTHON=sys.executable, **(extra | env)))


def test_the_candidate_is_a_tagged_revision_without_traffic_that_knows_its_shadow() -> None:
    plan = ship("candidate")

    tag, deploy = plan.commands
    assert tag[:3] == ["gcloud", "run", "services"] and "--update-tags=previous=" in " ".join(tag)
    assert deploy[:4] == ["gcloud", "run", "deploy", "ride-predictor"]
    assert "--no-traffic" in deploy and flag(deploy, "tag") == "candidate"
    updated = flag(deploy, "update-env-vars")
    # no registry to ask for the folder: the version, served through MLflow, and named
    assert "MODEL_URI=models:/ride-duration/2|MODEL_VERSION=ride-duration/2|" in updated
    assert "SHADOW_SUBSCRIPTION=ride-data-shadow-sub" in updated
    assert "SHADOW_RESULTS_TOPIC=ride-duration-shadow" in updated


def test_the_shadow_pushes_every_ride_to_the_tag_url_without_dead_letters() -> None:
    plan = ship("shadow")

    sub = command(plan, "gcloud", "pubsub", "subscriptions", "create")
    assert flag(sub, "topic") == "ride-data-push"
    assert flag(sub, "push-endpoint") == TAG_URL
    assert flag(sub, "push-auth-token-audience") == URL
    assert not any(a.startswith(("--dead-letter-topic", "--message-filter")) for a in sub)
    assert command(plan, "gcloud", "pubsub", "topics", "create")[4] == "ride-duration-shadow"


def shadow_against(tmp_path, traffic: list[dict[str, object]]):
    """Run the shadow step for real against a gcloud whose service has `traffic`."""
    fake = FakeGcloud.install(tmp_path)
    url = "https://ride-predictor-abc123-uc.a.run.app"
    described = json.dumps({"status": {"url": url, "traffic": traffic}})
    describe = ["run", "services", "describe"]
    fake.answer([(describe, url, 0, 1), (describe, described, 0)])
    done = run_script(SHIP_MODEL, "shadow", env=fake.env(PROJECT_ID=PROJECT, PYTHON=sys.executable))
    return done, fake.argvs()


def test_the_shadow_pushes_to_the_tag_url_cloud_run_gave_the_candidate(tmp_path) -> None:
    tag = "https://candidate---ride-predictor-abc123-uc.a.run.app"
    traffic = [
        {"revisionName": "r1", "percent": 100},
        {"revisionName": "r2", "tag": "candidate", "url": tag},
    ]

    done, calls = shadow_against(tmp_path, traffic)

    assert done.returncode == 0, done.stderr
    sub = next(c for c in calls if c[:3] == ["pubsub", "subscriptions", "create"])
    assert flag(sub, "push-endpoint") == tag + "/"
    assert flag(sub, "push-auth-token-audience") == "https://ride-predictor-abc123-uc.a.run.app"


def test_no_shadow_without_a_candidate_revision(tmp_path) -> None:
    done, calls = shadow_against(tmp_path, [{"revisionName": "r1", "percent": 100}])

    assert done.returncode == 1 and "no revision is tagged candidate" in done.stderr
    assert not any(c[:2] == ["pubsub", "subscriptions"] for c in calls)


def test_a_shadow_of_a_quarter_filters_the_rides_by_ride_id() -> None:
    sub = command(ship("shadow", SHADOW_SIXTEENTHS="4"), "gcloud", "pubsub", "subscriptions")

    assert flag(sub, "message-filter").count("hasPrefix(attributes.ride_id") == 4


def test_canary_promote_and_rollback_move_traffic_by_tag_and_the_alias_with_it() -> None:
    tracking = {"MLFLOW_TRACKING_URI": "https://mlflow.example.com"}
    canary, promote, rollback = (ship(s, **tracking) for s in ("canary", "promote", "rollback"))

    assert flag(canary.commands[0], "to-tags") == "candidate=10"
    assert flag(promote.commands[0], "to-tags") == "candidate=100"
    assert command(promote, "gcloud", "pubsub", "subscriptions", "delete")[4] == (
        "ride-data-shadow-sub"
    )
    assert "model_alias.py promote ride-duration" in promote.text
    assert flag(rollback.commands[0], "to-tags") == "previous=100"
    assert "model_alias.py rollback ride-duration" in rollback.text


def test_compare_reads_the_live_topics() -> None:
    plan = ship("compare")

    assert "-m devstack.compare --project=demo-project" in plan.text
    assert "--shadow-topic=ride-duration-shadow" in plan.text


def test_an_unknown_step_is_refused_with_the_usage() -> None:
    done = run_script(SHIP_MODEL, "--dry-run", "deploy", env=base_env(PROJECT_ID=PROJECT))

    assert done.returncode == 2 and "Usage:" in done.stderr


def serving_of(traffic: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    service = json.dumps({"status": {"traffic": traffic}})
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "serving_revision.py")],
        input=service, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "traffic",
    [
        [{"revisionName": "rp-00003", "percent": 100, "latestRevision": True}],
        # after a promotion: the candidate holds it all, tags stay on revisions with none
        [
            {"revisionName": "rp-00002", "tag": "previous"},
            {"revisionName": "rp-00003", "percent": 100},
            {"revisionName": "rp-00003", "tag": "candidate", "percent": 0},
        ],
    ],
)
def test_the_serving_revision_is_the_one_holding_the_riders_traffic(traffic) -> None:
    done = serving_of(traffic)

    assert (done.returncode, done.stdout) == (0, "rp-00003\n")


def test_a_canary_split_has_no_single_serving_revision() -> None:
    done = serving_of(
        [{"revisionName": "rp-00003", "percent": 90}, {"revisionName": "rp-00004", "percent": 10}]
    )

    assert done.returncode == 1
    assert "traffic is split (rp-00003 90%, rp-00004 10%)" in done.stderr


def test_a_candidate_is_refused_while_a_canary_splits_the_traffic(tmp_path) -> None:
    fake = FakeGcloud.install(tmp_path)
    split = {"status": {"traffic": [{"revisionName": "rp-00003", "percent": 90},
                                    {"revisionName": "rp-00004", "percent": 10,
                                     "tag": "candidate"}]}}  # fmt: skip
    fake.answer([(["run", "services", "describe"], json.dumps(split), 0)])
    env = fake.env(PROJECT_ID=PROJECT, IMAGE="img", MODEL_URI="models:/ride-duration/5",
                   PYTHON=sys.executable)  # fmt: skip

    done = run_script(SHIP_MODEL, "candidate", env=env)

    assert done.returncode == 1 and "a canary is under way" in done.stderr
    # nothing tagged, nothing deployed: the canary's revisions are as they were
    assert [argv[:3] for argv in fake.argvs()] == [["run", "services", "describe"]]


@pytest.fixture
def registry(tmp_path) -> str:
    """A registry of two versions: 1 (production) served by its tracking server, 2
    (challenger) in an S3 folder, as MLflow 3 stores a logged model."""
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    subprocess.run(
        [sys.executable, "-c", REGISTER, tracking, S3_FOLDER],
        env=base_env(), check=True, timeout=120,
    )  # fmt: skip
    return tracking


@pytest.mark.slow
def test_the_aliases_follow_candidate_promote_and_rollback(registry) -> None:
    env = base_env(MLFLOW_TRACKING_URI=registry, PYTHONPATH=str(ROOT))

    def alias(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "model_alias.py"), *args],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    one = "MODEL_URI=models:/ride-duration/1\nMODEL_VERSION=ride-duration/1"
    two = f"MODEL_URI={S3_FOLDER}\nMODEL_VERSION=ride-duration/2"
    assert alias("pin", "models:/ride-duration@production") == one
    assert alias("candidate", "models:/ride-duration@challenger") == two
    alias("promote", "ride-duration")
    assert alias("pin", "models:/ride-duration@production") == two
    assert alias("pin", "models:/ride-duration@previous") == one
    alias("rollback", "ride-duration")
    assert alias("pin", "models:/ride-duration@production") == one


@pytest.mark.slow
def test_a_dry_run_shows_the_pinned_folder_and_version_and_moves_no_alias(registry) -> None:
    plan = ship("candidate", MLFLOW_TRACKING_URI=registry,
                MODEL_URI="models:/ride-duration@challenger")  # fmt: skip

    updated = flag(command(plan, "gcloud", "run", "deploy"), "update-env-vars")
    assert f"MODEL_URI={S3_FOLDER}|MODEL_VERSION=ride-duration/2|" in updated
    assert "model_alias.py candidate models:/ride-duration@challenger" in plan.text
    assert "MODEL_VERSION=ride-duration/1" in pin_of(registry, "models:/ride-duration@candidate")


@pytest.mark.slow
def test_the_candidate_serves_the_version_its_alias_names_now(registry, tmp_path) -> None:
    fake = FakeGcloud.install(tmp_path / "gcloud")
    serving = {"status": {"traffic": [{"revisionName": "rp-00003", "percent": 100}]}}
    fake.answer([(["run", "services", "describe"], json.dumps(serving), 0)])
    env = fake.env(PROJECT_ID=PROJECT, IMAGE="img", MODEL_URI="models:/ride-duration@challenger",
                   MLFLOW_TRACKING_URI=registry, PYTHON=sys.executable)  # fmt: skip

    done = run_script(SHIP_MODEL, "candidate", env=env)

    assert done.returncode == 0, done.stderr
    tag, deploy = (argv for argv in fake.argvs() if "describe" not in argv)
    assert flag(tag, "update-tags") == "previous=rp-00003"
    updated = flag(deploy, "update-env-vars")
    assert f"MODEL_URI={S3_FOLDER}|MODEL_VERSION=ride-duration/2|" in updated
    # the registry's candidate alias names the version the revision serves
    assert f"MODEL_URI={S3_FOLDER}" in pin_of(registry, "models:/ride-duration@candidate")


def pin_of(tracking: str, uri: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "model_alias.py"), "pin", uri],
        env=base_env(MLFLOW_TRACKING_URI=tracking), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


S3_FOLDER = "s3://mlflow-artifacts/mlflow/1/models/m-2/artifacts"
# Two versions of a registered model: 1 under `production` and, until a candidate step moves it,
# `candidate`; 2, in an S3 folder, under `challenger`.
REGISTER = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
client.create_registered_model("ride-duration")
client.create_model_version("ride-duration", source="mlflow-artifacts:/1/models/m-1/artifacts")
client.create_model_version("ride-duration", source=sys.argv[2])
client.set_registered_model_alias("ride-duration", "production", "1")
client.set_registered_model_alias("ride-duration", "candidate", "1")
client.set_registered_model_alias("ride-duration", "challenger", "2")
"""
