"""What a drill found, per scenario, and the table that reports it."""

from dataclasses import dataclass, field

from devstack.load import Outcome, double_answers


@dataclass
class ScenarioResult:
    """Counts for one scenario, the expectations it was held to, and notes on what happened."""

    name: str
    sent: int = 0
    delivered: int = 0
    stream_duplicates: int = 0  # extra result messages on the stream, absorbed by the backend
    double_answers: int = 0  # rides whose answer changed after it was given
    crossed: int = 0
    worst_latency_s: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)  # measured, for tests and docs

    @property
    def lost(self) -> int:
        return self.sent - self.delivered

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def failed(self) -> list[str]:
        return [name for name, passed in self.checks.items() if not passed]

    def count(self, outcomes: list[Outcome], stream_duplicates: int = 0, ask: bool = True) -> None:
        """Fill the ride counts from the client's outcomes and the tap's duplicate count.

        With `ask`, each answering backend is asked again for its rides: an answer that changed
        since it was given is a double answer.
        """
        self.sent = len(outcomes)
        self.delivered = sum(o.final is not None for o in outcomes)
        self.crossed = sum(o.crossed for o in outcomes)
        self.stream_duplicates = stream_duplicates
        latencies = [o.latency_s for o in outcomes if o.latency_s is not None]
        self.worst_latency_s = max(latencies, default=0.0)
        self.checks["no ride lost"] = self.lost == 0
        self.checks["no result crossed"] = self.crossed == 0
        if ask:
            self.double_answers = double_answers(outcomes)
            self.checks["no double answer"] = self.double_answers == 0

    def summary(self) -> str:
        verdict = "ok" if self.ok else "FAILED: " + ", ".join(self.failed())
        return f"{self.name}: {verdict}; " + "; ".join(self.notes)


HEADER = (
    "| Scenario | Rides sent | Delivered | Lost | Duplicates on stream (absorbed) "
    "| Double answers | Crossed | Worst latency | Checks | Notes |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
)


def table(results: list[ScenarioResult]) -> str:
    """Render the results as a Markdown table."""
    rows = [
        f"| {r.name} | {r.sent} | {r.delivered} | {r.lost} | {r.stream_duplicates} "
        f"| {r.double_answers} | {r.crossed} | {r.worst_latency_s:.1f} s "
        f"| {'pass' if r.ok else 'FAIL: ' + ', '.join(r.failed())} | {'; '.join(r.notes)} |"
        for r in results
    ]
    return "\n".join([HEADER, *rows])
