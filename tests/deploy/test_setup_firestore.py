"""deploy/setup.sh --only firestore, run for real against a gcloud stand-in that records calls."""

import subprocess
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import SETUP, run_script
from tests.kit.fake_gcloud import FakeGcloud

DESCRIBE = ["firestore", "databases", "describe"]
CREATE = ["firestore", "databases", "create"]
TTLS_LIST = ["firestore", "fields", "ttls", "list"]
TTL_UPDATE = ["firestore", "fields", "ttls", "update"]
NATIVE = "FIRESTORE_NATIVE|us-central1\n"
FIELDS = "projects/demo-project/databases/(default)/collectionGroups/rides/fields"


@pytest.fixture
def fake(tmp_path: Path) -> FakeGcloud:
    return FakeGcloud.install(tmp_path)


def run_firestore(fake: FakeGcloud) -> subprocess.CompletedProcess[str]:
    env = fake.env(PROJECT_ID="demo-project", RETRY_DELAY_S="0")
    return run_script(SETUP, "--only", "firestore", env=env)


def changes(fake: FakeGcloud) -> list[list[str]]:
    """The calls that create a database or change a TTL policy."""
    return [argv for argv in fake.argvs() if argv[:3] == CREATE or argv[:4] == TTL_UPDATE]


def test_missing_database_is_created_in_native_mode_with_its_ttl_policy(fake: FakeGcloud) -> None:
    fake.answer([(DESCRIBE, "", 1)])

    done = run_firestore(fake)

    assert done.returncode == 0, done.stderr
    assert changes(fake) == [
        [
            *CREATE,
            "--database=(default)",
            "--location=us-central1",
            "--type=firestore-native",
            "--project=demo-project",
        ],
        [
            *TTL_UPDATE,
            "expire_at",
            "--collection-group=rides",
            "--enable-ttl",
            "--database=(default)",
            "--async",
            "--project=demo-project",
        ],
    ]


@pytest.mark.parametrize(
    ("listed", "updated"),
    [
        (f"{FIELDS}/expire_at|ACTIVE\n", False),
        (f"{FIELDS}/expire_at|CREATING\n", False),
        (f"{FIELDS}/expire_at|NEEDS_REPAIR\n", True),
        ("", True),
    ],
    ids=["active", "creating", "needs-repair", "absent"],
)
def test_ttl_policy_is_asked_for_only_when_not_active_or_creating(
    fake: FakeGcloud, listed: str, updated: bool
) -> None:
    fake.answer([(DESCRIBE, NATIVE, 0), (TTLS_LIST, listed, 0)])

    done = run_firestore(fake)

    assert done.returncode == 0, done.stderr
    assert [argv[:4] for argv in changes(fake)] == ([TTL_UPDATE] if updated else [])


def test_datastore_mode_database_stops_setup(fake: FakeGcloud) -> None:
    fake.answer([(DESCRIBE, "DATASTORE_MODE|us-central1\n", 0)])

    done = run_firestore(fake)

    assert done.returncode == 1
    assert "Firestore database (default) is DATASTORE_MODE, not FIRESTORE_NATIVE" in done.stderr
    assert changes(fake) == []


def test_database_elsewhere_is_kept_and_said(fake: FakeGcloud) -> None:
    fake.answer([(DESCRIBE, "FIRESTORE_NATIVE|nam5\n", 0), (TTLS_LIST, "", 0)])

    done = run_firestore(fake)

    assert done.returncode == 0, done.stderr
    assert "stays in nam5 (not us-central1): a database cannot move" in done.stderr
    assert [argv[:4] for argv in changes(fake)] == [TTL_UPDATE]


def test_another_ttl_field_on_the_rides_stops_setup(fake: FakeGcloud) -> None:
    # Firestore allows one TTL field per collection group.
    fake.answer([(DESCRIBE, NATIVE, 0), (TTLS_LIST, f"{FIELDS}/expiry|ACTIVE\n", 0)])

    done = run_firestore(fake)

    assert done.returncode == 1
    assert "collection group rides already has a TTL policy on expiry" in done.stderr
    assert changes(fake) == []


def test_ttl_policy_is_retried_while_a_new_database_comes_up(fake: FakeGcloud) -> None:
    # `gcloud firestore databases create` returns its operation without waiting for it.
    fake.answer([(DESCRIBE, "", 1), (TTL_UPDATE, "", 1, 2)])

    done = run_firestore(fake)

    assert done.returncode == 0, done.stderr
    assert [argv[:4] for argv in fake.argvs()].count(TTL_UPDATE) == 3
