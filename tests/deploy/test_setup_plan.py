"""deploy/setup.sh --dry-run: what it would do, in which order, and who it would trust with what."""

from collections import defaultdict
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import SETUP, Plan, base_env, dry_run, run_script
from tests.kit.fake_gcloud import FakeGcloud

PROJECT = "demo-project"
NUMBER = "123456789"
BACKEND = f"serviceAccount:ride-backend@{PROJECT}.iam.gserviceaccount.com"
PREDICTOR = f"serviceAccount:ride-predictor@{PROJECT}.iam.gserviceaccount.com"
INVOKER = f"serviceAccount:ride-push-invoker@{PROJECT}.iam.gserviceaccount.com"
DEPLOYER = f"serviceAccount:ride-deployer@{PROJECT}.iam.gserviceaccount.com"
PUBSUB_AGENT = f"serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
RECORDER = "ride-duration-pull-recorder"
# The IAM condition limiting the backend's Firestore role to the ride state database.
DATABASE_ONLY = (
    f'expression=resource.name=="projects/{PROJECT}/databases/(default)"'
    ",title=ride state database only"
    ",description=Documents of the Firestore database holding ride state"
)
BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
PUBSUB_WIDE_ROLES = {"roles/pubsub.admin", "roles/pubsub.editor"}


@pytest.fixture(scope="module")
def plan() -> Plan:
    return dry_run(SETUP, env=base_env(PROJECT_ID=PROJECT, PROJECT_NUMBER=NUMBER))


def flag(command: list[str], name: str) -> str | None:
    prefix = f"--{name}="
    return next((arg[len(prefix) :] for arg in command if arg.startswith(prefix)), None)


def grants(plan: Plan) -> dict[str, set[tuple[str, str, str]]]:
    """Map each member to the (resource kind, resource, role) it is granted."""
    table: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for command in plan.commands:
        if "add-iam-policy-binding" in command:
            verb = command.index("add-iam-policy-binding")
            kind, resource = " ".join(command[1:verb]), command[verb + 1]
            table[flag(command, "member")].add((kind, resource, flag(command, "role")))
    return table


def test_dry_run_calls_no_gcloud(tmp_path: Path) -> None:
    fake = FakeGcloud.install(tmp_path)

    done = run_script(SETUP, "--dry-run", env=fake.env(PROJECT_ID=PROJECT))

    assert done.returncode == 0, done.stderr
    assert fake.calls() == []


def test_no_basic_role_is_granted(plan: Plan) -> None:
    roles = {flag(c, "role") for c in plan.commands if "add-iam-policy-binding" in c}

    assert roles and not roles & BASIC_ROLES


def test_no_pubsub_editor_or_admin_on_the_project(plan: Plan) -> None:
    roles = {
        flag(c, "role") for c in plan.commands if c[1:3] == ["projects", "add-iam-policy-binding"]
    }

    assert roles and not roles & PUBSUB_WIDE_ROLES


def test_only_the_documented_grants_are_project_wide(plan: Plan) -> None:
    project_wide = {
        (flag(c, "member"), flag(c, "role"))
        for c in plan.commands
        if c[1:3] == ["projects", "add-iam-policy-binding"]
    }

    assert project_wide == {
        (BACKEND, f"projects/{PROJECT}/roles/rideBackendResultsSubscriber"),
        (BACKEND, "roles/datastore.user"),
        (DEPLOYER, f"projects/{PROJECT}/roles/rideServiceDeployer"),
        (DEPLOYER, "roles/logging.logWriter"),
        # Cloud Trace takes grants on projects only.
        (BACKEND, "roles/cloudtrace.agent"),
        (PREDICTOR, "roles/cloudtrace.agent"),
    }


def test_backend_publishes_rides_attaches_to_results_and_keeps_ride_state(plan: Plan) -> None:
    assert grants(plan)[BACKEND] == {
        ("projects", PROJECT, f"projects/{PROJECT}/roles/rideBackendResultsSubscriber"),
        ("projects", PROJECT, "roles/datastore.user"),
        ("pubsub topics", "ride-data-push", "roles/pubsub.publisher"),
        ("pubsub topics", "ride-duration-pull", "roles/pubsub.subscriber"),
        ("pubsub subscriptions", RECORDER, "roles/pubsub.subscriber"),
        ("projects", PROJECT, "roles/cloudtrace.agent"),
    }


def project_bindings(plan: Plan) -> dict[tuple[str | None, str | None], str | None]:
    """Each project-level (member, role) with the --condition it is granted under."""
    return {
        (flag(c, "member"), flag(c, "role")): flag(c, "condition")
        for c in plan.commands
        if c[1:3] == ["projects", "add-iam-policy-binding"]
    }


def test_backend_firestore_role_is_limited_to_the_ride_state_database(plan: Plan) -> None:
    assert project_bindings(plan)[(BACKEND, "roles/datastore.user")] == DATABASE_ONLY


def test_other_project_grants_are_unconditional(plan: Plan) -> None:
    # A project policy holding a conditional binding refuses an add without --condition.
    conditions = project_bindings(plan)
    del conditions[(BACKEND, "roles/datastore.user")]

    assert conditions and set(conditions.values()) == {"None"}


def test_firestore_condition_names_the_configured_database() -> None:
    env = base_env(PROJECT_ID=PROJECT, PROJECT_NUMBER=NUMBER, FIRESTORE_DATABASE="ride-state")

    plan = dry_run(SETUP, "--only", "iam", env=env)

    condition = project_bindings(plan)[(BACKEND, "roles/datastore.user")]
    assert condition is not None
    assert condition.startswith(
        f'expression=resource.name=="projects/{PROJECT}/databases/ride-state",'
    )


def role_permissions(plan: Plan, role_id: str) -> set[str]:
    create = next(c for c in plan.commands if c[1:5] == ["iam", "roles", "create", role_id])
    return set(flag(create, "permissions").split(","))


def test_backend_custom_role_holds_only_its_subscription_permissions(plan: Plan) -> None:
    assert role_permissions(plan, "rideBackendResultsSubscriber") == {
        "pubsub.subscriptions.create",
        "pubsub.subscriptions.consume",
        "pubsub.subscriptions.delete",
        "pubsub.subscriptions.get",
    }


def test_deployer_custom_role_only_reads_and_updates_a_subscription(plan: Plan) -> None:
    assert role_permissions(plan, "ridePushSubscriptionUpdater") == {
        "pubsub.subscriptions.get",
        "pubsub.subscriptions.update",
    }


def test_no_pubsub_editor_or_admin_on_any_resource(plan: Plan) -> None:
    granted = {role for table in grants(plan).values() for _, _, role in table}

    assert granted and not granted & PUBSUB_WIDE_ROLES


def test_predictor_publishes_results_and_dead_letters_and_reads_its_secrets(plan: Plan) -> None:
    accessor = "roles/secretmanager.secretAccessor"
    assert grants(plan)[PREDICTOR] == {
        ("pubsub topics", "ride-duration-pull", "roles/pubsub.publisher"),
        ("pubsub topics", "ride-data-dead-letter", "roles/pubsub.publisher"),
        ("secrets", "mlflow-aws-access-key-id", accessor),
        ("secrets", "mlflow-aws-secret-access-key", accessor),
        ("projects", PROJECT, "roles/cloudtrace.agent"),
    }


def test_pubsub_agent_can_dead_letter(plan: Plan) -> None:
    # The token creator role only where the agent predates April 2021: test_setup_iam.py.
    assert grants(plan)[PUBSUB_AGENT] == {
        ("pubsub topics", "ride-data-dead-letter", "roles/pubsub.publisher"),
        ("pubsub subscriptions", "ride-data-push-sub", "roles/pubsub.subscriber"),
    }
    assert "# (granted only if the project was created before 2021-04-08)" in plan.text


def test_deployer_deploys_and_acts_as_the_runtime_accounts_only(plan: Plan) -> None:
    user = "roles/iam.serviceAccountUser"
    viewer = "roles/secretmanager.viewer"
    assert grants(plan)[DEPLOYER] == {
        ("projects", PROJECT, f"projects/{PROJECT}/roles/rideServiceDeployer"),
        ("projects", PROJECT, "roles/logging.logWriter"),
        ("artifacts repositories", "ride-duration", "roles/artifactregistry.writer"),
        ("storage buckets", f"gs://{PROJECT}_cloudbuild", "roles/storage.objectViewer"),
        ("iam service-accounts", BACKEND.removeprefix("serviceAccount:"), user),
        ("iam service-accounts", PREDICTOR.removeprefix("serviceAccount:"), user),
        ("iam service-accounts", INVOKER.removeprefix("serviceAccount:"), user),
        (
            "pubsub subscriptions",
            "ride-data-push-sub",
            f"projects/{PROJECT}/roles/ridePushSubscriptionUpdater",
        ),
        ("secrets", "mlflow-aws-access-key-id", viewer),
        ("secrets", "mlflow-aws-secret-access-key", viewer),
    }


def test_push_invoker_gets_nothing_from_setup(plan: Plan) -> None:
    # Its one grant, run.invoker on the predictor service, needs the service: cloudbuild.yaml.
    assert INVOKER not in grants(plan)


def test_everything_is_created_before_the_first_grant(plan: Plan) -> None:
    # Monitoring comes last: its metrics, dashboard and policies need no grant.
    creates = [
        i
        for i, c in enumerate(plan.commands)
        if "create" in c[1:5] and c[1] != "logging" and "monitoring" not in c[1:3]
    ]
    bindings = [i for i, c in enumerate(plan.commands) if "add-iam-policy-binding" in c]

    assert len(creates) >= 14 and max(creates) < min(bindings)


def test_apis_are_enabled_first(plan: Plan) -> None:
    assert plan.commands[0][:3] == ["gcloud", "services", "enable"]


def test_secret_values_reach_only_stdin_in_the_plan() -> None:
    value = "AKIA-not-a-real-key-8c1f"
    env = base_env(PROJECT_ID=PROJECT, MLFLOW_AWS_ACCESS_KEY_ID=value)

    plan = dry_run(SETUP, "--only", "secrets", env=env)

    assert value not in plan.text
    assert [
        "gcloud",
        "secrets",
        "versions",
        "add",
        "mlflow-aws-access-key-id",
        "--data-file=-",
        f"--project={PROJECT}",
    ] in plan.commands


FIRESTORE_CREATE = [
    "gcloud",
    "firestore",
    "databases",
    "create",
    "--database=(default)",
    "--location=us-central1",
    "--type=firestore-native",
    f"--project={PROJECT}",
]
TTL_UPDATE = [
    "gcloud",
    "firestore",
    "fields",
    "ttls",
    "update",
    "expire_at",
    "--collection-group=rides",
    "--enable-ttl",
    "--database=(default)",
    "--async",
    f"--project={PROJECT}",
]
RECORDER_CREATE = [
    "gcloud",
    "pubsub",
    "subscriptions",
    "create",
    RECORDER,
    "--topic=ride-duration-pull",
    "--ack-deadline=30",
    "--message-retention-duration=604800s",
    "--expiration-period=never",
    f"--project={PROJECT}",
]


def test_dead_letters_are_kept_as_long_as_pubsub_allows(plan: Plan) -> None:
    # 31 days, Pub/Sub's maximum; the push and recorder subscriptions keep its default, 7.
    retention = {
        c[4]: flag(c, "message-retention-duration")
        for c in plan.commands
        if c[1:4] == ["pubsub", "subscriptions", "create"]
    }

    assert retention == {
        "ride-data-push-sub": "604800s",
        "ride-data-dead-letter-sub": "2678400s",
        RECORDER: "604800s",
    }


def test_firestore_api_is_enabled_with_the_others(plan: Plan) -> None:
    assert "firestore.googleapis.com" in plan.commands[0]


def test_recorder_subscription_is_a_plain_pull_on_the_results_topic(plan: Plan) -> None:
    # No filter, push endpoint or dead-letter topic: every result reaches one backend instance.
    assert RECORDER_CREATE in plan.commands


def test_firestore_creates_the_native_database_then_its_ttl_policy(plan: Plan) -> None:
    assert FIRESTORE_CREATE in plan.commands
    assert TTL_UPDATE in plan.commands
    assert plan.commands.index(FIRESTORE_CREATE) < plan.commands.index(TTL_UPDATE)


def test_firestore_probes_before_it_creates(plan: Plan) -> None:
    database = "--database=(default)"
    assert ["gcloud", "firestore", "databases", "describe", database, f"--project={PROJECT}"] in (
        plan.checks
    )
    ttls = next(c for c in plan.checks if c[1:5] == ["firestore", "fields", "ttls", "list"])
    assert ttls[5:8] == ["--collection-group=rides", database, f"--project={PROJECT}"]


def test_new_commands_come_in_section_order(plan: Plan) -> None:
    # pubsub (with the recorder), then firestore, then secrets, then the grants.
    order = [
        plan.commands.index(RECORDER_CREATE),
        plan.commands.index(FIRESTORE_CREATE),
        plan.commands.index(TTL_UPDATE),
        next(i for i, c in enumerate(plan.commands) if c[1:3] == ["secrets", "create"]),
        next(i for i, c in enumerate(plan.commands) if "add-iam-policy-binding" in c),
    ]

    assert order == sorted(order)
    pubsub = [i for i, c in enumerate(plan.commands) if c[1] == "pubsub" and "create" in c]
    assert max(pubsub) == order[0]


def test_only_firestore_plans_only_firestore_commands() -> None:
    plan = dry_run(SETUP, "--only", "firestore", env=base_env(PROJECT_ID=PROJECT))

    exemptions = [c for c in plan.commands if c[1:4] == ["firestore", "indexes", "fields"]]
    assert plan.commands == [FIRESTORE_CREATE, *exemptions, TTL_UPDATE]
    assert len(exemptions) == 7 and "expire_at" in exemptions[0]
    assert "expires 7 days after its creation" in plan.text
    assert "# wait until database (default) answers (at most 300s)" in plan.text


@pytest.mark.parametrize(
    ("env", "location"),
    [({"REGION": "europe-west1"}, "europe-west1"), ({"FIRESTORE_LOCATION": "eur3"}, "eur3")],
    ids=["the-services-region", "its-own"],
)
def test_database_location(env: dict[str, str], location: str) -> None:
    plan = dry_run(SETUP, "--only", "firestore", env=base_env(PROJECT_ID=PROJECT, **env))

    assert f"--location={location}" in plan.commands[0]


@pytest.mark.parametrize("days", ["0", "7.5", "seven", "-1"])
def test_retention_of_no_whole_days_is_refused(days: str) -> None:
    env = base_env(PROJECT_ID=PROJECT, RIDE_RETENTION_DAYS=days)

    done = run_script(SETUP, "--dry-run", "--only", "firestore", env=env)

    assert done.returncode == 1
    assert f"RIDE_RETENTION_DAYS={days}: use a whole number of days" in done.stderr


def test_only_pubsub_plans_only_pubsub_commands() -> None:
    plan = dry_run(SETUP, "--only", "pubsub", env=base_env(PROJECT_ID=PROJECT))

    assert plan.commands and all(c[1] == "pubsub" for c in plan.commands)


def test_missing_project_is_refused() -> None:
    done = run_script(SETUP, "--dry-run", env=base_env())

    assert done.returncode == 1
    assert "set PROJECT_ID" in done.stderr


def test_unknown_section_is_refused() -> None:
    done = run_script(SETUP, "--dry-run", "--only", "dns", env=base_env(PROJECT_ID=PROJECT))

    assert done.returncode == 1
    assert "unknown section 'dns'" in done.stderr
