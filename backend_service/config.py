"""Backend settings, read from the environment once at start-up."""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from .coarse import DEFAULT_PATH


class ConfigError(ValueError):
    """One or more settings are missing or malformed; the message lists every one."""


@dataclass(frozen=True)
class Config:
    project_id: str
    rides_topic: str = "ride-data-push"
    results_topic: str = "ride-duration-pull"
    result_timeout_s: float = 10.0
    publish_timeout_s: float = 3.0
    publish_max_latency_s: float = 0.0
    # Pub/Sub's minimum expiration TTL is one day: an orphaned subscription goes after that.
    results_subscription_ttl_s: int = 86_400
    coarse_model_path: Path = DEFAULT_PATH
    max_body_bytes: int = 16 * 1024
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Config":
        """Build the config from environment variables, or raise listing every problem."""
        errors: list[str] = []
        project_id = environ.get("PROJECT_ID", "").strip()
        if not project_id:
            errors.append("PROJECT_ID is required")
        defaults = {f.name: f.default for f in fields(cls)}

        def number(name: str, field: str, *, allow_zero: bool = False) -> float:
            raw = environ.get(name, "")
            if raw == "":
                return float(defaults[field])  # type: ignore[arg-type]
            try:
                value = float(raw)
            except ValueError:
                errors.append(f"{name} must be a number, got {raw!r}")
                return float(defaults[field])  # type: ignore[arg-type]
            if value < 0 or (value == 0 and not allow_zero):
                errors.append(f"{name} must be positive, got {raw!r}")
            return value

        config = cls(
            project_id=project_id,
            rides_topic=environ.get("BACKEND_PUSH_STREAM") or cls.rides_topic,
            results_topic=environ.get("BACKEND_PULL_STREAM") or cls.results_topic,
            result_timeout_s=number("RESULT_TIMEOUT_S", "result_timeout_s"),
            publish_timeout_s=number("PUBLISH_TIMEOUT_S", "publish_timeout_s"),
            publish_max_latency_s=number(
                "PUBLISH_MAX_LATENCY_S", "publish_max_latency_s", allow_zero=True
            ),
            results_subscription_ttl_s=int(
                number("RESULTS_SUBSCRIPTION_TTL_S", "results_subscription_ttl_s")
            ),
            coarse_model_path=Path(environ.get("COARSE_MODEL_PATH") or DEFAULT_PATH),
            max_body_bytes=int(number("MAX_BODY_BYTES", "max_body_bytes")),
            log_level=(environ.get("LOG_LEVEL") or cls.log_level).upper(),
        )
        if config.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            errors.append(f"LOG_LEVEL must be a logging level name, got {config.log_level!r}")
        if not config.coarse_model_path.is_file():
            errors.append(f"COARSE_MODEL_PATH {str(config.coarse_model_path)!r} is not a file")
        if errors:
            raise ConfigError("invalid backend configuration: " + "; ".join(errors))
        return config
