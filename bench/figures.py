"""One measured figure: what was measured, under which conditions, against which target."""

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    key: str
    title: str
    conditions: str
    result: str  # the figure as a person reads it
    target: str = ""
    met: bool | None = None  # None: no target, or not measured
    data: dict[str, Any] = field(default_factory=dict)  # the raw numbers, for results.json

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def skipped(key: str, title: str, reason: str, target: str = "") -> Figure:
    """A figure that could not be measured here, saying why."""
    return Figure(key, title, "not run", f"skipped: {reason}", target, None, {"skipped": reason})


def ms(value: float) -> str:
    """Format milliseconds for the table."""
    return f"{value:.1f} ms" if value >= 1 else f"{value * 1000:.0f} us"
