"""Backend settings, read from the environment once at start-up."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ride_stream.settings import Env
from ride_stream.tracing import TraceSettings

from .coarse import DEFAULT_PATH

# A worker told to stop (Cloud Run sends SIGTERM, then SIGKILL 10 s later) finishes its requests
# within gunicorn's graceful_timeout (8 s, gunicorn_conf.py), then deletes its results
# subscription: a confirmation's wait must end well inside that.
MAX_RESULT_TIMEOUT_S = 6.0
RIDE_STORES = ("firestore", "memory")


@dataclass(frozen=True)
class Config:
    project_id: str
    rides_topic: str = "ride-data-push"
    results_topic: str = "ride-duration-pull"
    # How long a confirmation waits for its accurate result before answering 202 pending.
    result_timeout_s: float = 5.0
    # How long a confirmation's publish may take, retries included, before the 503.
    publish_timeout_s: float = 3.0
    publish_max_latency_s: float = 0.0
    # Publish RPCs in flight at once: with tens of milliseconds a round trip, one at a time
    # would queue each confirmation behind another's RPC (ride_stream.group_commit).
    publish_max_in_flight: int = 8
    # Pub/Sub's minimum expiration TTL is one day: an orphaned subscription goes after that.
    results_subscription_ttl_s: int = 86_400
    coarse_model_path: Path = DEFAULT_PATH
    max_body_bytes: int = 16 * 1024
    log_level: str = "INFO"
    # Spans of a ride's hops: none recorded, a local file (make run), or Cloud Trace (deployed).
    tracing: TraceSettings = TraceSettings()
    # Set, the clients talk to the emulator there (the client library reads it too); the
    # results stream's channels are made for it: plain, and without keepalive pings.
    pubsub_emulator_host: str = ""
    # Where rides live: "firestore", shared by every process and instance (what the deploy
    # sets), or "memory", this process only (a ride is 404 on any other).
    ride_store: str = "firestore"
    firestore_database: str = "(default)"
    rides_collection: str = "rides"
    ride_retention_days: float = 7.0  # a ride's document expires then (a Firestore TTL policy)
    # The results subscription every backend instance shares, from which results are recorded.
    recorder_subscription: str = "ride-duration-pull-recorder"
    store_timeout_s: float = 2.0  # longest a Firestore call may take, retries included

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Config":
        """Build the config from environment variables, or raise listing every problem."""
        env = Env(environ)
        config = cls(
            project_id=env.required("PROJECT_ID"),
            rides_topic=env.text("RIDES_TOPIC", cls.rides_topic, formerly="BACKEND_PUSH_STREAM"),
            results_topic=env.text(
                "RESULTS_TOPIC", cls.results_topic, formerly="BACKEND_PULL_STREAM"
            ),
            result_timeout_s=env.number("RESULT_TIMEOUT_S", cls.result_timeout_s),
            **env.publisher(cls),
            results_subscription_ttl_s=int(
                env.number("RESULTS_SUBSCRIPTION_TTL_S", cls.results_subscription_ttl_s)
            ),
            coarse_model_path=Path(env.text("COARSE_MODEL_PATH") or DEFAULT_PATH),
            max_body_bytes=int(env.number("MAX_BODY_BYTES", cls.max_body_bytes)),
            log_level=env.log_level(),
            tracing=env.tracing(),
            pubsub_emulator_host=env.text("PUBSUB_EMULATOR_HOST"),
            ride_store=env.text("RIDE_STORE", cls.ride_store).lower(),
            firestore_database=env.text("FIRESTORE_DATABASE", cls.firestore_database),
            rides_collection=env.text("RIDES_COLLECTION", cls.rides_collection),
            ride_retention_days=env.number("RIDE_RETENTION_DAYS", cls.ride_retention_days),
            recorder_subscription=env.text("RECORDER_SUBSCRIPTION", cls.recorder_subscription),
            store_timeout_s=env.number("STORE_TIMEOUT_S", cls.store_timeout_s),
        )
        if config.ride_store not in RIDE_STORES:
            env.errors.append(
                f"RIDE_STORE must be one of {', '.join(RIDE_STORES)}, got {config.ride_store!r}"
            )
        if config.result_timeout_s > MAX_RESULT_TIMEOUT_S:
            env.errors.append(
                f"RESULT_TIMEOUT_S must be at most {MAX_RESULT_TIMEOUT_S:g} (a stopping worker"
                f" answers its waiting confirmations first), got {config.result_timeout_s:g}"
            )
        if not config.coarse_model_path.is_file():
            env.errors.append(f"COARSE_MODEL_PATH {str(config.coarse_model_path)!r} is not a file")
        env.check("backend")
        return config
