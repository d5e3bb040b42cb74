"""deploy/setup.sh --only registry against a gcloud stand-in: nothing grows forever."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import SETUP, run_script
from tests.kit.fake_gcloud import FakeGcloud

REPO_DESCRIBE = ["artifacts", "repositories", "describe"]
SET_POLICIES = ["artifacts", "repositories", "set-cleanup-policies"]
BUCKET_DESCRIBE = ["storage", "buckets", "describe"]
BUCKET_UPDATE = ["storage", "buckets", "update"]


@pytest.fixture
def fake(tmp_path: Path) -> FakeGcloud:
    return FakeGcloud.install(tmp_path)


def run_registry(fake: FakeGcloud, **env: str) -> subprocess.CompletedProcess[str]:
    return run_script(SETUP, "--only", "registry", env=fake.env(PROJECT_ID="demo-project", **env))


def calls(fake: FakeGcloud, prefix: list[str]) -> list[dict]:
    return [call for call in fake.calls() if call["argv"][: len(prefix)] == prefix]


def test_images_beyond_the_last_ten_of_each_service_are_deleted(fake: FakeGcloud) -> None:
    assert run_registry(fake).returncode == 0

    [call] = calls(fake, SET_POLICIES)
    assert "--no-dry-run" in call["argv"] and "ride-duration" in call["argv"]
    policies = {p["name"]: p for p in json.loads(call["files"]["--policy"])}
    assert policies["keep-last-images"] == {
        "name": "keep-last-images",
        "action": {"type": "Keep"},
        "mostRecentVersions": {"keepCount": 10},
    }
    # Everything else, tagged or not; a keep policy wins where both match.
    assert policies["delete-older-images"]["action"] == {"type": "Delete"}
    assert policies["delete-older-images"]["condition"] == {"tagState": "any"}


def test_how_many_images_are_kept_is_a_setting(fake: FakeGcloud) -> None:
    assert run_registry(fake, AR_KEEP_IMAGES="3").returncode == 0

    [call] = calls(fake, SET_POLICIES)
    keep = json.loads(call["files"]["--policy"])[0]
    assert keep["mostRecentVersions"] == {"keepCount": 3}


@pytest.mark.parametrize(
    ("described", "updated"),
    [
        ("10|DELETE|False\n", False),
        ("10|DELETE|\n", False),
        ("5|DELETE|False\n", True),
        ("10|DELETE|True\n", True),
        ("", True),
    ],
    ids=["in-place", "dry-run-unset", "other-count", "dry-run-only", "none"],
)
def test_the_policy_is_set_only_when_it_differs(
    fake: FakeGcloud, described: str, updated: bool
) -> None:
    fake.answer([(REPO_DESCRIBE, described, 0)])

    assert run_registry(fake).returncode == 0
    assert bool(calls(fake, SET_POLICIES)) is updated


def test_uploaded_sources_are_deleted_after_a_week(fake: FakeGcloud) -> None:
    assert run_registry(fake).returncode == 0

    [call] = calls(fake, BUCKET_UPDATE)
    assert call["argv"][3] == "gs://demo-project_cloudbuild"
    assert json.loads(call["files"]["--lifecycle-file"]) == {
        "rule": [
            {"action": {"type": "Delete"}, "condition": {"age": 7, "matchesPrefix": ["source/"]}}
        ]
    }


def test_a_lifecycle_rule_in_place_is_left_alone(fake: FakeGcloud) -> None:
    fake.answer([(BUCKET_DESCRIBE, "7|source/\n", 0)])

    assert run_registry(fake).returncode == 0
    assert calls(fake, BUCKET_UPDATE) == []


def test_no_policy_file_is_left_behind(fake: FakeGcloud, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    assert run_registry(fake, TMPDIR=str(scratch)).returncode == 0
    assert list(scratch.iterdir()) == []
