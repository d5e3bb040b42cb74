"""Read a service's settings from its environment once, collecting every problem at once."""

from collections.abc import Mapping
from typing import Any

from .tracing import EXPORTERS, TraceSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """One or more settings are missing or malformed; the message lists every one."""


class Env:
    """Typed reads of environment variables; `check` raises listing every problem found."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: list[str] = []

    def text(self, name: str, default: str = "", *, formerly: str | None = None) -> str:
        """Return `name` (or the name it had before, `formerly`), stripped, else `default`."""
        value = self.environ.get(name, "").strip()
        if not value and formerly:
            value = self.environ.get(formerly, "").strip()
        return value or default

    def required(self, name: str) -> str:
        """Return `name`, noting a problem when it is missing or empty."""
        value = self.text(name)
        if not value:
            self.errors.append(f"{name} is required")
        return value

    def number(self, name: str, default: float, *, allow_zero: bool = False) -> float:
        """Return `name` as a positive number (or zero when allowed), else `default`."""
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.errors.append(f"{name} must be a number, got {raw!r}")
            return default
        if value < 0 or (value == 0 and not allow_zero):
            kind = "non-negative" if allow_zero else "positive"
            self.errors.append(f"{name} must be {kind}, got {raw!r}")
        return value

    def log_level(self, default: str = "INFO") -> str:
        """Return LOG_LEVEL as an upper-case logging level name."""
        level = self.text("LOG_LEVEL", default).upper()
        if level not in LOG_LEVELS:
            self.errors.append(f"LOG_LEVEL must be a logging level name, got {level!r}")
        return level

    def publisher(self, defaults: Any) -> dict[str, Any]:
        """Return the group-commit publisher's settings, `defaults` giving each one's default."""
        return {
            "publish_timeout_s": self.number("PUBLISH_TIMEOUT_S", defaults.publish_timeout_s),
            "publish_max_latency_s": self.number(
                "PUBLISH_MAX_LATENCY_S", defaults.publish_max_latency_s, allow_zero=True
            ),
            "publish_max_in_flight": int(
                self.number("PUBLISH_MAX_IN_FLIGHT", defaults.publish_max_in_flight)
            ),
        }

    def tracing(self) -> TraceSettings:
        """Return the tracing settings: TRACE_EXPORTER, TRACE_SAMPLE_RATIO and TRACE_FILE."""
        exporter = self.text("TRACE_EXPORTER", TraceSettings.exporter).lower()
        if exporter not in EXPORTERS:
            self.errors.append(
                f"TRACE_EXPORTER must be one of {', '.join(EXPORTERS)}, got {exporter!r}"
            )
        ratio = self.number("TRACE_SAMPLE_RATIO", TraceSettings.sample_ratio, allow_zero=True)
        if ratio > 1:
            self.errors.append(f"TRACE_SAMPLE_RATIO must be at most 1, got {ratio:g}")
        file = self.required("TRACE_FILE") if exporter == "local" else self.text("TRACE_FILE")
        return TraceSettings(exporter, ratio, file)

    def check(self, what: str) -> None:
        """Raise ConfigError naming every problem noted so far, if there is any."""
        if self.errors:
            raise ConfigError(f"invalid {what} configuration: " + "; ".join(self.errors))
