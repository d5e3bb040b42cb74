"""deploy/setup.sh's monitoring section: log-based metrics, the dashboard and the alert policies."""

import json
import re
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import ROOT, SETUP, Plan, base_env, dry_run, flag, run_script
from tests.kit.fake_gcloud import FakeGcloud

PROJECT = "demo-project"
MONITORING = ROOT / "deploy" / "monitoring"
METRICS = sorted(p.stem for p in (MONITORING / "metrics").glob("*.json"))
ALERTS = sorted(p.name for p in (MONITORING / "alerts").glob("*.json"))
# Google's own metrics the dashboard and alerts read: Cloud Run's and Pub/Sub's, created by them.
BUILT_IN = {
    "run.googleapis.com/request_count",
    "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
}


def monitoring_plan(tmp_path: Path, **env: str) -> Plan:
    """The dry run of the monitoring section, its rendered files kept in tmp_path."""
    env = base_env(PROJECT_ID=PROJECT, MONITORING_RENDER_DIR=str(tmp_path)) | env
    return dry_run(SETUP, "--only", "monitoring", env=env)


def metric_types(document: object) -> set[str]:
    """Every metric.type a dashboard or policy filters on."""
    return set(re.findall(r'metric\.type\s*=\s*"([^"]+)"', json.dumps(document).replace("\\", "")))


def rendered(tmp_path: Path) -> dict[str, object]:
    return {
        str(path.relative_to(tmp_path)): json.loads(path.read_text())
        for path in sorted(tmp_path.glob("**/*.json"))
    }


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return monitoring_plan(tmp_path)


def test_every_metric_is_created_from_its_file(plan: Plan) -> None:
    created = [c for c in plan.commands if c[1:4] == ["logging", "metrics", "create"]]

    assert sorted(c[4] for c in created) == METRICS
    for command in created:
        assert flag(command, "config-from-file").endswith(f"/metrics/{command[4]}.json")


def test_the_metrics_count_confirmations_pushes_predictions_and_model_versions() -> None:
    assert METRICS == [
        "ride_confirmation_latency",
        "ride_confirmations",
        "ride_prediction_latency",
        "ride_push_outcomes",
        "ride_results",
    ]


def test_rendered_files_parse_and_name_the_deployed_resources(plan: Plan, tmp_path: Path) -> None:
    files = rendered(tmp_path)

    assert set(files) == {
        *(f"metrics/{m}.json" for m in METRICS),
        "dashboard.json",
        *(f"alerts/{a}" for a in ALERTS),
    }
    text = json.dumps(files)
    assert "${" not in text
    assert "ride-backend" in text and "ride-predictor" in text
    assert "ride-data-push-sub" in text and "ride-data-dead-letter-sub" in text
    assert f"projects/{PROJECT}/logs/run.googleapis.com%2Frequests" in text


def test_dashboard_and_alerts_read_only_metrics_the_deploy_creates(
    plan: Plan, tmp_path: Path
) -> None:
    files = rendered(tmp_path)
    created = {
        f"logging.googleapis.com/user/{c[4]}"
        for c in plan.commands
        if c[1:4] == ["logging", "metrics", "create"]
    }
    read = set()
    for name, document in files.items():
        if not name.startswith("metrics/"):
            read |= metric_types(document)

    assert read - created <= BUILT_IN
    assert created <= read  # every metric made is shown or alerted on


def test_each_label_the_metrics_declare_has_its_extractor(plan: Plan, tmp_path: Path) -> None:
    for name, metric in rendered(tmp_path).items():
        if name.startswith("metrics/"):
            labels = {label["key"] for label in metric["metricDescriptor"].get("labels", [])}
            assert labels == set(metric.get("labelExtractors", {})), name


def test_the_four_alerts_watch_dead_letters_backlog_5xx_and_late_answers(
    plan: Plan, tmp_path: Path
) -> None:
    policies = {
        name: document
        for name, document in rendered(tmp_path).items()
        if name.startswith("alerts/")
    }
    conditions = {
        name: document["conditions"][0]["conditionThreshold"] for name, document in policies.items()
    }

    dead = conditions["alerts/dead_letters.json"]
    assert 'subscription_id="ride-data-dead-letter-sub"' in dead["filter"]
    assert (dead["thresholdValue"], dead["duration"]) == (0, "300s")
    backlog = conditions["alerts/push_backlog.json"]
    assert "oldest_unacked_message_age" in backlog["filter"]
    assert 'subscription_id="ride-data-push-sub"' in backlog["filter"]
    assert backlog["thresholdValue"] == 60
    errors = conditions["alerts/backend_5xx.json"]
    assert 'response_code_class="5xx"' in errors["filter"]
    assert "5xx" not in errors["denominatorFilter"]
    late = conditions["alerts/late_answers.json"]
    assert 'metric.labels.status="202"' in late["filter"]
    assert late["thresholdValue"] == 0.05
    assert all("notificationChannels" not in policy for policy in policies.values())
    assert "no ALERT_EMAIL" in plan.text


def test_an_alert_email_becomes_the_channel_of_every_policy(tmp_path: Path) -> None:
    plan = monitoring_plan(tmp_path, ALERT_EMAIL="ops@example.com")

    create = next(
        c for c in plan.commands if c[1:5] == ["beta", "monitoring", "channels", "create"]
    )
    assert flag(create, "channel-labels") == "email_address=ops@example.com"
    for name, document in rendered(tmp_path).items():
        if name.startswith("alerts/"):
            assert document["notificationChannels"] == [
                f"projects/{PROJECT}/notificationChannels/CHANNEL_ID"
            ]


def test_a_second_run_updates_what_exists(tmp_path: Path) -> None:
    fake = FakeGcloud.install(tmp_path)
    dashboard = f"projects/{PROJECT}/dashboards/abc"
    policy = f"projects/{PROJECT}/alertPolicies/123"
    fake.answer(
        [
            (["logging", "metrics", "describe"], "", 0),
            (["monitoring", "dashboards", "list"], f"{dashboard}\n", 0),
            (["alpha", "monitoring", "policies", "list"], f"{policy}\n", 0),
        ]
    )

    done = run_script(SETUP, "--only", "monitoring", env=fake.env(PROJECT_ID=PROJECT))

    assert done.returncode == 0, done.stderr
    argvs = fake.argvs()
    assert not [a for a in argvs if "create" in a]
    assert sorted(a[3] for a in argvs if a[:3] == ["logging", "metrics", "update"]) == METRICS
    assert ["monitoring", "dashboards", "update", dashboard] in [a[:4] for a in argvs]
    updates = [a for a in argvs if a[:4] == ["alpha", "monitoring", "policies", "update"]]
    assert len(updates) == len(ALERTS) and {a[4] for a in updates} == {policy}


def test_the_apis_the_monitoring_needs_are_enabled() -> None:
    plan = dry_run(SETUP, "--only", "apis", env=base_env(PROJECT_ID=PROJECT))

    enable = next(c for c in plan.commands if c[1:3] == ["services", "enable"])
    assert {
        "cloudtrace.googleapis.com",
        "logging.googleapis.com",
        "monitoring.googleapis.com",
    } <= set(enable)
