"""deploy/setup.sh --only firestore, run for real against a gcloud stand-in that records calls."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import ROOT, SETUP, run_script
from tests.kit.fake_gcloud import FakeGcloud

DESCRIBE = ["firestore", "databases", "describe"]
CREATE = ["firestore", "databases", "create"]
TTLS_LIST = ["firestore", "fields", "ttls", "list"]
TTL_UPDATE = ["firestore", "fields", "ttls", "update"]
INDEX_DESCRIBE = ["firestore", "indexes", "fields", "describe"]
INDEX_UPDATE = ["firestore", "indexes", "fields", "update"]
# Every field of a ride document, as backend_service/firestore_rides.py writes it.
RIDE_FIELDS = [
    "expire_at",
    "created_at",
    "fingerprint",
    "duration_coarse",
    "duration_final",
    "model_version",
    "results",
]
NATIVE = "FIRESTORE_NATIVE|us-central1\n"
FIELDS = "projects/demo-project/databases/(default)/collectionGroups/rides/fields"


@pytest.fixture
def fake(tmp_path: Path) -> FakeGcloud:
    return FakeGcloud.install(tmp_path)


def run_firestore(fake: FakeGcloud, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {"PROJECT_ID": "demo-project", "RETRY_DELAY_S": "0", "FIRESTORE_POLL_S": "0"}
    return run_script(SETUP, "--only", "firestore", env=fake.env(**settings | env))


def changes(fake: FakeGcloud) -> list[list[str]]:
    """The calls that create a database or change a TTL policy."""
    return [argv for argv in fake.argvs() if argv[:3] == CREATE or argv[:4] == TTL_UPDATE]


def test_missing_database_is_created_in_native_mode_with_its_ttl_policy(fake: FakeGcloud) -> None:
    fake.answer([(DESCRIBE, "", 1, 1)])

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
    fake.answer([(DESCRIBE, "", 1, 1), (TTL_UPDATE, "", 1, 2)])

    done = run_firestore(fake)

    assert done.returncode == 0, done.stderr
    assert [argv[:4] for argv in fake.argvs()].count(TTL_UPDATE) == 3


def test_setup_waits_for_a_new_database_to_answer_then_carries_on(fake: FakeGcloud) -> None:
    # Missing at the first probe; then still coming up for three more.
    fake.answer([(DESCRIBE, "", 1, 4)])

    done = run_firestore(fake)

    assert done.returncode == 0, done.stderr
    assert done.stderr.count("database (default) is not ready yet") == 3
    assert "database (default) answers after" in done.stderr
    # Nothing is asked of the database before it answers.
    words = [argv[:3] for argv in fake.argvs()]
    first_change = next(i for i, argv in enumerate(fake.argvs()) if argv[:4] == INDEX_UPDATE)
    expected = [DESCRIBE, CREATE, *[DESCRIBE] * 4, TTLS_LIST[:3], INDEX_DESCRIBE[:3]]
    assert words[:first_change] == expected


def test_a_database_that_never_answers_stops_setup_within_the_bound(fake: FakeGcloud) -> None:
    fake.answer([(DESCRIBE, "", 1)])

    done = run_firestore(fake, FIRESTORE_WAIT_S="3")

    assert done.returncode == 1
    assert "did not answer within 3s: run deploy/setup.sh again" in done.stderr
    # 1 probe before creating, then 3 / max(poll, 1) + 1 = 4 waits.
    assert [argv[:3] for argv in fake.argvs()].count(DESCRIBE) == 5
    assert not [argv for argv in fake.argvs() if argv[:4] in (INDEX_UPDATE, TTL_UPDATE)]


def test_every_ride_field_is_exempt_from_single_field_indexing(fake: FakeGcloud) -> None:
    fake.answer([(DESCRIBE, NATIVE, 0)])

    assert run_firestore(fake).returncode == 0
    updates = [argv for argv in fake.argvs() if argv[:4] == INDEX_UPDATE]
    assert [argv[4] for argv in updates] == RIDE_FIELDS
    assert all("--disable-indexes" in argv for argv in updates)
    # The TTL field's exemption finishes before its TTL policy is asked for.
    assert "--async" not in updates[0] and all("--async" in argv for argv in updates[1:])


@pytest.mark.parametrize(
    ("described", "updated"),
    [("False|\n", False), ("True|\n", True), ("False|[{'order': 'ASCENDING'}]\n", True)],
    ids=["exempt", "inherits-the-default", "has-its-own-index"],
)
def test_a_field_already_exempt_is_left_alone(
    fake: FakeGcloud, described: str, updated: bool
) -> None:
    fake.answer([(DESCRIBE, NATIVE, 0), (INDEX_DESCRIBE, described, 0)])

    assert run_firestore(fake).returncode == 0
    assert bool([a for a in fake.argvs() if a[:4] == INDEX_UPDATE]) is updated


def test_the_exempt_fields_are_the_fields_the_backend_writes() -> None:
    source = (ROOT / "backend_service" / "firestore_rides.py").read_text()
    document = source.split("document = {", 1)[1].split("}", 1)[0]

    assert sorted(re.findall(r'"(\w+)":', document)) == sorted(RIDE_FIELDS)
