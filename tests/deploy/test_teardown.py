"""deploy/teardown.sh: its plan, its questions, and a second run that finds nothing to do."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import TEARDOWN, Plan, base_env, dry_run, run_script
from tests.kit.fake_gcloud import FakeGcloud

PROJECT = "demo-project"
ACCOUNTS = [
    f"{name}@{PROJECT}.iam.gserviceaccount.com"
    for name in ("ride-backend", "ride-predictor", "ride-push-invoker", "ride-deployer")
]


MONITORING = TEARDOWN.parent / "monitoring"
METRICS = sorted(path.stem for path in (MONITORING / "metrics").glob("*.json"))
ALERTS = [
    json.loads(path.read_text())["displayName"] for path in sorted(MONITORING.glob("alerts/*.json"))
]
DASHBOARD = json.loads((MONITORING / "dashboard.json").read_text())["displayName"]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return dry_run(TEARDOWN, env=base_env(PROJECT_ID=PROJECT))


def deleted(plan_or_argvs: Plan | list[list[str]]) -> list[tuple[str, ...]]:
    """(command words..., resource) of every deleting command, in order."""
    argvs = plan_or_argvs.commands if isinstance(plan_or_argvs, Plan) else plan_or_argvs
    found = []
    for argv in argvs:
        words = [a for a in argv if not a.startswith("-")]
        if words[0] == "gcloud":
            words = words[1:]
        if {"delete", "rm", "bulk-delete", "remove-iam-policy-binding"} & set(words):
            found.append(tuple(words))
    return found


def test_the_plan_deletes_everything_setup_and_the_build_create(plan: Plan) -> None:
    assert deleted(plan) == [
        ("run", "services", "delete", "ride-backend"),
        ("run", "services", "delete", "ride-predictor"),
        *[("alpha", "monitoring", "policies", "delete", f"<{name}>") for name in ALERTS],
        ("monitoring", "dashboards", "delete", f"<{DASHBOARD}>"),
        *[("logging", "metrics", "delete", metric) for metric in METRICS],
        ("pubsub", "subscriptions", "delete", "ride-data-push-sub"),
        ("pubsub", "subscriptions", "delete", "ride-data-dead-letter-sub"),
        ("pubsub", "subscriptions", "delete", "ride-duration-pull-recorder"),
        ("pubsub", "topics", "delete", "ride-data-push"),
        ("pubsub", "topics", "delete", "ride-duration-pull"),
        ("pubsub", "topics", "delete", "ride-data-dead-letter"),
        ("pubsub", "topics", "delete", "ride-duration-shadow"),
        ("secrets", "delete", "mlflow-aws-access-key-id"),
        ("secrets", "delete", "mlflow-aws-secret-access-key"),
        *[("projects", "remove-iam-policy-binding", PROJECT)] * 6,
        ("iam", "roles", "delete", "rideBackendResultsSubscriber"),
        ("iam", "roles", "delete", "ridePushSubscriptionUpdater"),
        ("iam", "roles", "delete", "rideServiceDeployer"),
        *[("iam", "service-accounts", "delete", account) for account in ACCOUNTS],
        ("artifacts", "repositories", "delete", "ride-duration"),
        ("storage", "rm", f"gs://{PROJECT}_cloudbuild"),
    ]


def test_the_plan_removes_every_project_grant_setup_makes(plan: Plan) -> None:
    setup = dry_run(
        TEARDOWN.parent / "setup.sh",
        "--only",
        "iam",
        env=base_env(PROJECT_ID=PROJECT, PROJECT_NUMBER="1"),
    )

    def pairs(commands: list[list[str]], verb: str) -> set[tuple[str, str]]:
        return {
            (
                next(a for a in c if a.startswith("--member=")),
                next(a for a in c if a.startswith("--role=")),
            )
            for c in commands
            if c[1:3] == ["projects", verb]
        }

    assert pairs(plan.commands, "remove-iam-policy-binding") == pairs(
        setup.commands, "add-iam-policy-binding"
    )


def test_the_plan_says_it_also_deletes_what_only_a_listing_shows(plan: Plan) -> None:
    assert "every other subscription 'gcloud pubsub subscriptions list' shows on them" in plan.text
    assert "# check: gcloud pubsub subscriptions list" in plan.text


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("keep", []),
        ("rides", [("firestore", "bulk-delete")]),
        ("database", [("firestore", "databases", "delete")]),
    ],
)
def test_firestore_is_kept_or_its_rides_or_database_deleted_by_choice(
    choice: str, expected: list[tuple[str, ...]]
) -> None:
    plan = dry_run(
        TEARDOWN, f"--firestore={choice}", "--only", "firestore", env=base_env(PROJECT_ID=PROJECT)
    )

    assert deleted(plan) == expected
    if choice == "rides":
        assert "--collection-ids=rides" in plan.commands[0]


def test_secrets_may_be_kept() -> None:
    plan = dry_run(TEARDOWN, "--keep-secrets", env=base_env(PROJECT_ID=PROJECT))

    assert not [d for d in deleted(plan) if d[0] == "secrets"]


def test_dry_run_calls_no_gcloud(tmp_path: Path) -> None:
    fake = FakeGcloud.install(tmp_path)

    done = run_script(TEARDOWN, "--dry-run", env=fake.env(PROJECT_ID=PROJECT))

    assert done.returncode == 0, done.stderr
    assert fake.calls() == []


def teardown(fake: FakeGcloud, *args: str, answers: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(TEARDOWN), *args],
        env=fake.env(PROJECT_ID=PROJECT),
        input=answers,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def fake(tmp_path: Path) -> FakeGcloud:
    return FakeGcloud.install(tmp_path)


def test_nothing_is_deleted_unless_the_project_id_is_typed(fake: FakeGcloud) -> None:
    done = teardown(fake, answers="yes\n")

    assert done.returncode == 1
    assert "Type the project id to go on" in done.stderr and "nothing deleted" in done.stderr
    assert fake.calls() == []


@pytest.mark.parametrize(("answer", "secrets_deleted"), [("n", False), ("y", True)])
def test_the_secrets_get_their_own_question(
    fake: FakeGcloud, answer: str, secrets_deleted: bool
) -> None:
    done = teardown(fake, answers=f"{PROJECT}\n{answer}\n")

    assert done.returncode == 0, done.stderr
    assert (
        "Delete the secrets mlflow-aws-access-key-id and mlflow-aws-secret-access-key"
        in done.stderr
    )
    gone = deleted(fake.argvs())
    assert ("run", "services", "delete", "ride-backend") in gone
    assert bool([d for d in gone if d[0] == "secrets"]) is secrets_deleted


LISTED = "\n".join(
    [
        f"projects/{PROJECT}/subscriptions/ride-data-push-sub|projects/{PROJECT}/topics/ride-data-push",
        # A crashed backend instance's own results subscription.
        f"projects/{PROJECT}/subscriptions/ride-duration-pull-0a1b2c3d-1|projects/{PROJECT}/topics/ride-duration-pull",
        # One an interrupted teardown left behind its deleted topic.
        f"projects/{PROJECT}/subscriptions/ride-duration-pull-9f8e7d6c-2|_deleted-topic_",
        # Somebody else's.
        f"projects/{PROJECT}/subscriptions/billing-export|projects/{PROJECT}/topics/billing",
        f"projects/{PROJECT}/subscriptions/other-orphan|_deleted-topic_",
    ]
)
POLICY = "\n".join(
    [
        f"roles/run.admin|serviceAccount:{ACCOUNTS[3]}",
        f"roles/datastore.user|deleted:serviceAccount:{ACCOUNTS[0]}?uid=123",
        "roles/owner|user:someone@example.com",
    ]
)


def test_subscriptions_and_bindings_found_at_run_time_are_deleted(fake: FakeGcloud) -> None:
    fake.answer(
        [
            (["pubsub", "subscriptions", "list"], LISTED, 0),
            (["projects", "get-iam-policy"], POLICY, 0),
        ]
    )

    done = teardown(fake, "--yes")

    assert done.returncode == 0, done.stderr
    gone = deleted(fake.argvs())
    subs = [d[3] for d in gone if d[:3] == ("pubsub", "subscriptions", "delete")]
    assert subs == [
        "ride-data-push-sub",
        "ride-duration-pull-0a1b2c3d-1",
        "ride-duration-pull-9f8e7d6c-2",
    ]
    removed = [a for a in fake.argvs() if a[:2] == ["projects", "remove-iam-policy-binding"]]
    assert {(a[3], a[4]) for a in removed} == {
        (f"--member=serviceAccount:{ACCOUNTS[3]}", "--role=roles/run.admin"),
        (f"--member=deleted:serviceAccount:{ACCOUNTS[0]}?uid=123", "--role=roles/datastore.user"),
    }


def test_a_second_run_finds_nothing_and_succeeds(fake: FakeGcloud) -> None:
    # Everything is gone: every probe fails; roles answer describe marked deleted.
    fake.answer(
        [
            (["iam", "roles", "describe"], "True", 0),
            *[
                (probe.split(), "", 1)
                for probe in (
                    "run services describe",
                    "logging metrics describe",
                    "pubsub topics describe",
                    "secrets describe",
                    "iam service-accounts describe",
                    "artifacts repositories describe",
                    "storage buckets describe",
                    "firestore databases describe",
                )
            ],
        ]
    )

    done = teardown(fake, "--yes", "--firestore=database")

    assert done.returncode == 0, done.stderr
    assert deleted(fake.argvs()) == []


def test_an_unknown_firestore_choice_is_refused(fake: FakeGcloud) -> None:
    done = teardown(fake, "--yes", "--firestore=all")

    assert done.returncode == 1
    assert "--firestore=all: use keep, rides or database" in done.stderr
    assert fake.calls() == []


def test_monitoring_deletes_the_policies_and_dashboard_it_finds_by_name(fake: FakeGcloud) -> None:
    policy = f"projects/{PROJECT}/alertPolicies/1234"
    dashboard = "projects/123456/dashboards/abcd"
    fake.answer(
        [
            (["alpha", "monitoring", "policies", "list"], policy + "\n", 0),
            (["monitoring", "dashboards", "list"], dashboard + "\n", 0),
            (["logging", "metrics", "describe"], "", 1),
        ]
    )

    done = teardown(fake, "--yes", "--only", "monitoring")

    assert done.returncode == 0, done.stderr
    assert deleted(fake.argvs()) == [
        *[("alpha", "monitoring", "policies", "delete", policy)] * len(ALERTS),
        ("monitoring", "dashboards", "delete", dashboard),
    ]
    lists = [a for a in fake.argvs() if a[:4] == ["alpha", "monitoring", "policies", "list"]]
    assert {a for argv in lists for a in argv if a.startswith("--filter=")} == {
        f'--filter=displayName="{name}"' for name in ALERTS
    }


def test_the_shadow_topic_named_in_the_environment_is_the_one_deleted() -> None:
    plan = dry_run(
        TEARDOWN,
        "--only",
        "pubsub",
        env=base_env(PROJECT_ID=PROJECT, SHADOW_RESULTS_TOPIC="cand-x"),
    )

    assert ("pubsub", "topics", "delete", "cand-x") in deleted(plan)
    assert ("pubsub", "topics", "delete", "ride-duration-shadow") not in deleted(plan)
