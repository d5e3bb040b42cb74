"""Predictor settings, read from the environment once at start-up."""

from collections.abc import Mapping
from dataclasses import dataclass

# Pub/Sub caps a message at 10 MB; base64 grows it by a third, plus the envelope around it.
# https://cloud.google.com/pubsub/quotas#resource_limits
PUBSUB_MAX_ENVELOPE_BYTES = 14 * 1024 * 1024


class ConfigError(ValueError):
    """One or more settings are missing or malformed; the message lists every one."""


@dataclass(frozen=True)
class Config:
    project_id: str
    model_uri: str
    results_topic: str = "ride-duration-pull"
    dead_letter_topic: str = "ride-data-dead-letter"
    publish_timeout_s: float = 5.0
    # Only for results that queue while a Publish RPC is in flight: under concurrent pushes,
    # 1 ms gathers them into fewer RPCs (1,557-1,680 against 1,287-1,444 pushes/s measured);
    # a result published with nothing in flight leaves at once whatever this is.
    publish_max_latency_s: float = 0.001
    max_envelope_bytes: int = PUBSUB_MAX_ENVELOPE_BYTES
    push_audience: str | None = None
    push_service_account: str | None = None
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Config":
        """Build the config from environment variables, or raise listing every problem."""
        errors: list[str] = []
        model_uri = environ.get("MODEL_URI", "").strip()
        run_id = environ.get("RUN_ID", "").strip()
        if not model_uri and run_id:
            if not environ.get("MLFLOW_TRACKING_URI"):
                errors.append("RUN_ID needs MLFLOW_TRACKING_URI to find the run")
            model_uri = f"runs:/{run_id}/model"
        if not model_uri:
            errors.append("MODEL_URI is required (or RUN_ID with MLFLOW_TRACKING_URI)")
        project_id = environ.get("PROJECT_ID", "").strip()
        if not project_id:
            errors.append("PROJECT_ID is required")
        config = cls(
            project_id=project_id,
            model_uri=model_uri,
            results_topic=environ.get("BACKEND_PULL_STREAM", cls.results_topic),
            dead_letter_topic=environ.get("DEAD_LETTER_TOPIC", cls.dead_letter_topic),
            publish_timeout_s=_number(environ, "PUBLISH_TIMEOUT_S", cls.publish_timeout_s, errors),
            publish_max_latency_s=_number(
                environ, "PUBLISH_MAX_LATENCY_S", cls.publish_max_latency_s, errors, allow_zero=True
            ),
            max_envelope_bytes=int(
                _number(environ, "MAX_ENVELOPE_BYTES", cls.max_envelope_bytes, errors)
            ),
            push_audience=environ.get("PUSH_AUDIENCE") or None,
            push_service_account=environ.get("PUSH_SERVICE_ACCOUNT") or None,
            log_level=environ.get("LOG_LEVEL", cls.log_level).upper(),
        )
        if config.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            errors.append(f"LOG_LEVEL must be a logging level name, got {config.log_level!r}")
        if errors:
            raise ConfigError("invalid predictor configuration: " + "; ".join(errors))
        return config


def _number(
    environ: Mapping[str, str], name: str, default: float, errors: list[str], *, allow_zero=False
) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        errors.append(f"{name} must be a number, got {raw!r}")
        return default
    if value < 0 or (value == 0 and not allow_zero):
        errors.append(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {raw!r}")
    return value
