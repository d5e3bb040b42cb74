"""Every gcloud command the deploy files can issue parses in the installed gcloud.

gcloud checks a command's arguments before it looks for an account, so each command, run here
without one, must fail with exactly "no active account" and nothing earlier.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.kit import cloudbuild
from tests.kit.deploy_scripts import (
    ROLLOUT,
    SETUP,
    SHIP_MODEL,
    SHIP_STEPS,
    TEARDOWN,
    base_env,
    config_defaults,
    dry_run,
    offline_env,
    run_script,
)
from tests.kit.fake_gcloud import FakeGcloud

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
    "firestore databases describe",
)


def setup_calls(tmp_path: Path, *, exists: bool) -> list[list[str]]:
    """The calls setup.sh makes when everything is missing, or all present but drifted."""
    fake = FakeGcloud.install(tmp_path)
    # A new Firestore database answers from the second probe on (setup waits for it).
    uses = {probe: 1 if "firestore" in probe else None for probe in PROBES}
    missing = [] if exists else [(probe.split(), "", 1, uses[probe]) for probe in PROBES]
    fake.answer([(["projects", "describe"], "123456789", 0), *missing])
    env = fake.env(PROJECT_ID="demo-project", MLFLOW_AWS_ACCESS_KEY_ID="x")
    assert run_script(SETUP, env=env).returncode == 0
    return with_files(fake, tmp_path)


def with_files(fake: FakeGcloud, folder: Path) -> list[list[str]]:
    """The calls' argv, each file flag pointing at a copy of what the script had written there:
    gcloud reads a --policy file while it parses the command."""
    argvs = []
    for number, call in enumerate(fake.calls()):
        argv = list(call["argv"])
        for name, contents in call.get("files", {}).items():
            copy = folder / f"call-{number}{name}.json"
            copy.write_text(contents)
            argv = [f"{name}={copy}" if a.startswith(f"{name}=") else a for a in argv]
        argvs.append(argv)
    return argvs


def teardown_calls(tmp_path: Path, firestore: str) -> list[list[str]]:
    """The calls of a teardown that finds everything, a leftover subscription and a binding."""
    fake = FakeGcloud.install(tmp_path)
    sub = "projects/demo-project/subscriptions/ride-duration-pull-ab12-1"
    binding = (
        "roles/logging.logWriter|serviceAccount:ride-deployer@demo-project.iam.gserviceaccount.com"
    )
    fake.answer(
        [
            (["pubsub", "subscriptions", "list"], f"{sub}|_deleted-topic_\n", 0),
            (["projects", "get-iam-policy"], binding + "\n", 0),
            (
                ["alpha", "monitoring", "policies", "list"],
                "projects/demo-project/alertPolicies/1\n",
                0,
            ),
            (["monitoring", "dashboards", "list"], "projects/1/dashboards/a1\n", 0),
        ]
    )
    env = fake.env(PROJECT_ID="demo-project")
    assert run_script(TEARDOWN, "--yes", f"--firestore={firestore}", env=env).returncode == 0
    return fake.argvs()


def rollout_calls(tmp_path: Path, **substitutions: str) -> list[list[str]]:
    """The calls of a first deploy of the predictor, with the build's check before it."""
    fake = FakeGcloud.install(tmp_path)
    url = "https://ride-predictor-abc123-uc.a.run.app"
    fake.answer(
        [
            (["run", "services", "describe"], "", 1, 1),
            (["run", "services", "describe"], url, 0),
            (["secrets", "versions", "describe"], "ENABLED", 0),
        ]
    )
    env = fake.env() | cloudbuild.predictor_step_env(**substitutions)
    assert run_script(ROLLOUT, "--check", env=env).returncode == 0
    args = cloudbuild.predictor_deploy_args(tmp_path)
    assert run_script(ROLLOUT, *args, env=env).returncode == 0
    return fake.argvs()


def ship_model_calls() -> list[list[str]]:
    """The gcloud commands of every step of deploy/ship_model.sh, a quarter shadowed."""
    env = base_env(
        PROJECT_ID="demo-project", IMAGE="img", MODEL_URI="models:/ride-duration/2",
        SHADOW_SIXTEENTHS="4", PYTHON=sys.executable,
    )  # fmt: skip
    return [argv[1:] for step in SHIP_STEPS for argv in dry_run(SHIP_MODEL, step, env=env).commands]


def flag_key(arg: str) -> str:
    """A flag's name; for --condition also whether it is None, since gcloud parses the two apart."""
    name, _, value = arg.partition("=")
    return arg if name == "--condition" and value == "None" else name


def distinct(argvs: list[list[str]]) -> list[list[str]]:
    """One command per (command words, flag names): the flags are what is being checked.

    Existence probes whose only flag is the global --project are left out: nothing to check,
    and each gcloud start costs most of a second.
    """
    names = set(config_defaults(PROJECT_ID="demo-project").values())
    seen: dict[tuple[object, ...], list[str]] = {}
    for argv in argvs:
        words = tuple(a for a in argv[:4] if not a.startswith("-") and a not in names)
        flags = frozenset(flag_key(a) for a in argv if a.startswith("--"))
        if "describe" in words and flags <= {"--project"}:
            continue
        seen.setdefault((words, flags), argv)
    return list(seen.values())


def gcloud_stderr(gcloud: str, config: Path, argv: list[str]) -> str:
    """Run gcloud without an account; return what it printed on stderr."""
    env = offline_env(config, CLOUDSDK_CORE_PROJECT="demo-project")
    done = subprocess.run(
        [gcloud, *argv], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return done.stderr


# Some 50 gcloud starts, four at a time: minutes on a loaded machine.
@pytest.mark.timeout(1200)
def test_every_command_parses(gcloud: str, gcloud_config: Path, tmp_path: Path) -> None:
    argvs = distinct(
        setup_calls(tmp_path / "missing", exists=False)
        + setup_calls(tmp_path / "drifted", exists=True)
        + rollout_calls(tmp_path / "rollout", _MLFLOW_TRACKING_URI="https://mlflow.example.com")
        + rollout_calls(
            tmp_path / "rollout-without-keys",
            _MODEL_URI="s3://models/m/1",
            _MODEL_NEEDS_S3_KEYS="false",
        )
        + [cloudbuild.backend_deploy_args()]
        + teardown_calls(tmp_path / "teardown-rides", "rides")
        + teardown_calls(tmp_path / "teardown-database", "database")
        + ship_model_calls()
    )

    with ThreadPoolExecutor(max_workers=4) as pool:
        errors = pool.map(lambda argv: gcloud_stderr(gcloud, gcloud_config, argv), argvs)
        results = dict(zip(map(" ".join, argvs), errors, strict=True))

    rejected = {cmd: err[:300] for cmd, err in results.items() if NO_ACCOUNT not in err}
    assert rejected == {}
    assert len(results) > 25, sorted(results)


def test_a_misspelt_flag_is_caught(gcloud: str, gcloud_config: Path) -> None:
    argv = ["pubsub", "subscriptions", "create", "rides", "--topic=rides", "--ack-dedline=60"]

    assert NO_ACCOUNT not in gcloud_stderr(gcloud, gcloud_config, argv)
