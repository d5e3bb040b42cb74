"""Every gcloud command the deploy files can issue parses in the installed gcloud.

gcloud checks a command's arguments before it looks for an account, so each command, run here
without one, must fail with exactly "no active account" and nothing earlier.
"""

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import cloudbuild
from .conftest import offline_env
from .fake_gcloud import FakeGcloud
from .scripts import ROLLOUT, SETUP, config_defaults, run_script
from .test_rollout import with_tracking

pytestmark = pytest.mark.slow
NO_ACCOUNT = "You do not currently have an active account selected."
PROBES = (
    "artifacts repositories describe",
    "storage buckets describe",
    "iam service-accounts describe",
    "iam roles describe",
    "pubsub topics describe",
    "pubsub subscriptions describe",
    "secrets describe",
    "secrets versions access",
)


def setup_calls(tmp_path: Path, *, exists: bool) -> list[list[str]]:
    """The calls setup.sh makes when everything is missing, or all present but drifted."""
    fake = FakeGcloud.install(tmp_path)
    missing = [] if exists else [(probe.split(), "", 1) for probe in PROBES]
    fake.answer([(["projects", "describe"], "123456789", 0), *missing])
    env = fake.env(PROJECT_ID="demo-project", MLFLOW_AWS_ACCESS_KEY_ID="x")
    assert run_script(SETUP, env=env).returncode == 0
    return fake.argvs()


def rollout_calls(tmp_path: Path) -> list[list[str]]:
    fake = FakeGcloud.install(tmp_path)
    url = "https://ride-predictor-abc123-uc.a.run.app"
    fake.answer([(["run", "services", "describe"], "", 1, 1), (["run", "services", "describe"], url, 0)])  # fmt: skip
    assert run_script(ROLLOUT, env=fake.env() | with_tracking()).returncode == 0
    return fake.argvs()


def backend_deploy() -> list[str]:
    config = cloudbuild.load()
    values = cloudbuild.values(config, PROJECT_ID="demo-project", COMMIT_SHA="0123abcd")
    return [cloudbuild.substitute(arg, values) for arg in cloudbuild.step(config, "deploy-backend")["args"]]  # fmt: skip


def distinct(argvs: list[list[str]]) -> list[list[str]]:
    """One command per (command words, flag names): the flags are what is being checked."""
    names = set(config_defaults(PROJECT_ID="demo-project").values())
    seen: dict[tuple[object, ...], list[str]] = {}
    for argv in argvs:
        words = tuple(a for a in argv[:4] if not a.startswith("-") and a not in names)
        flags = frozenset(a.split("=", 1)[0] for a in argv if a.startswith("--"))
        seen.setdefault((words, flags), argv)
    return list(seen.values())


def test_every_command_parses(gcloud: str, gcloud_config: Path, tmp_path: Path) -> None:
    argvs = distinct(
        setup_calls(tmp_path / "missing", exists=False)
        + setup_calls(tmp_path / "drifted", exists=True)
        + rollout_calls(tmp_path / "rollout")
        + [backend_deploy()]
    )
    env = offline_env(gcloud_config, CLOUDSDK_CORE_PROJECT="demo-project")

    def stderr(argv: list[str]) -> str:
        done = subprocess.run(
            [gcloud, *argv], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        return done.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(map(" ".join, argvs), pool.map(stderr, argvs), strict=True))

    rejected = {cmd: err.splitlines()[0] for cmd, err in results.items() if NO_ACCOUNT not in err}
    assert rejected == {}
    assert len(results) > 25
