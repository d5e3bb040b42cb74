"""Predictor settings, read from the environment once at start-up."""

from collections.abc import Mapping
from dataclasses import dataclass

from ride_stream.settings import Env
from ride_stream.tracing import TraceSettings

from .push_auth import CLOUD_RUN_IAM, MODES, SIGNATURE
from .shadow import ShadowSettings, shadow_problems, short_name

# What a pyfunc model without a signature takes; predictor_service.inputs names the columns
# (it needs pandas, which the native path never loads).
MODEL_INPUTS = ("course", "ride", "features")

# Pub/Sub caps a message at 10 MB; base64 grows it by a third, plus the envelope around it.
# https://cloud.google.com/pubsub/quotas#resource_limits
PUBSUB_MAX_ENVELOPE_BYTES = 14 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    project_id: str
    model_uri: str
    # The inputs of a model without a signature: one of MODEL_INPUTS; None when unset.
    model_input: str | None = None
    # The version the revision was made with (MODEL_VERSION, `name/N` or `run:<id>`, pinned by
    # the deploy): results carry it, and a MODEL_URI resolving to another version is refused.
    model_version: str | None = None
    results_topic: str = "ride-duration-pull"
    dead_letter_topic: str = "ride-data-dead-letter"
    publish_timeout_s: float = 5.0
    # Only for results that queue while a Publish RPC is in flight: under concurrent pushes,
    # 1 ms gathers them into fewer RPCs (docs/benchmarks.md has the measured gain); a result
    # published with nothing in flight leaves at once whatever this is.
    publish_max_latency_s: float = 0.001
    # Publish RPCs in flight at once: with tens of milliseconds a round trip, one at a time
    # would queue each result behind another's RPC (ride_stream.group_commit).
    publish_max_in_flight: int = 8
    max_envelope_bytes: int = PUBSUB_MAX_ENVELOPE_BYTES
    push_audience: str | None = None
    push_service_account: str | None = None
    # How push tokens are checked when PUSH_AUDIENCE is set (predictor_service.push_auth).
    push_auth_mode: str = SIGNATURE
    log_level: str = "INFO"
    # Spans of a ride's hops: none recorded, a local file (make run), or Cloud Trace (deployed).
    tracing: TraceSettings = TraceSettings()
    # Pushes from this subscription are a candidate's shadow: answered on their own topic
    # (predictor_service.shadow). None: every push is a rider's.
    shadow: ShadowSettings | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Config":
        """Build the config from environment variables, or raise listing every problem."""
        env = Env(environ)
        model_uri = env.text("MODEL_URI")
        run_id = env.text("RUN_ID")
        if not model_uri and run_id:
            if not env.text("MLFLOW_TRACKING_URI"):
                env.errors.append("RUN_ID needs MLFLOW_TRACKING_URI to find the run")
            model_uri = f"runs:/{run_id}/model"
        if not model_uri:
            env.errors.append("MODEL_URI is required (or RUN_ID with MLFLOW_TRACKING_URI)")
        results_topic = env.text("RESULTS_TOPIC", cls.results_topic, formerly="BACKEND_PULL_STREAM")
        dead_letter_topic = env.text("DEAD_LETTER_TOPIC", cls.dead_letter_topic)
        config = cls(
            project_id=env.required("PROJECT_ID"),
            model_uri=model_uri,
            model_input=_model_input(env),
            model_version=env.text("MODEL_VERSION") or None,
            results_topic=results_topic,
            dead_letter_topic=dead_letter_topic,
            **env.publisher(cls),
            max_envelope_bytes=int(env.number("MAX_ENVELOPE_BYTES", cls.max_envelope_bytes)),
            push_audience=env.text("PUSH_AUDIENCE") or None,
            push_service_account=env.text("PUSH_SERVICE_ACCOUNT") or None,
            push_auth_mode=_push_auth_mode(env),
            log_level=env.log_level(),
            tracing=env.tracing(),
            shadow=_shadow(env, results_topic, dead_letter_topic),
        )
        env.check("predictor")
        return config


def _model_input(env: Env) -> str | None:
    raw = env.text("MODEL_INPUT")
    if raw and raw not in MODEL_INPUTS:
        env.errors.append(f"MODEL_INPUT must be one of {', '.join(MODEL_INPUTS)}, got {raw!r}")
    return raw or None


def _shadow(env: Env, results_topic: str, dead_letter_topic: str) -> ShadowSettings | None:
    subscription = env.text("SHADOW_SUBSCRIPTION")
    topic = env.text("SHADOW_RESULTS_TOPIC")
    problems = shadow_problems(subscription, topic, (results_topic, dead_letter_topic))
    env.errors.extend(problems)
    if problems or not subscription:
        return None
    return ShadowSettings(short_name(subscription), short_name(topic))


def _push_auth_mode(env: Env) -> str:
    raw = env.text("PUSH_AUTH_MODE")
    if raw and raw not in MODES:
        env.errors.append(f"PUSH_AUTH_MODE must be one of {', '.join(MODES)}, got {raw!r}")
        return SIGNATURE
    if raw and not env.text("PUSH_AUDIENCE"):
        # Without an audience nothing is checked: a mode alone would promise a check not made.
        env.errors.append(
            f"PUSH_AUTH_MODE={raw} needs PUSH_AUDIENCE, the audience tokens must carry"
        )
    if raw == CLOUD_RUN_IAM and not env.text("PUSH_SERVICE_ACCOUNT"):
        # Cloud Run's IAM check lets in every holder of run.invoker; with the signature gone,
        # the email claim is what tells the push invoker from the others.
        env.errors.append(f"PUSH_AUTH_MODE={raw} needs PUSH_SERVICE_ACCOUNT, the push invoker")
    # Unset, the safe mode: verify the signature, accept no token whose signature was removed.
    return raw or SIGNATURE
