"""A lab per test: fresh stacks on the session emulator, all stopped afterwards."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.lab import Lab
from faults.report import ScenarioResult, table

_results: list[ScenarioResult] = []


@pytest.fixture
def lab(emulator, trained_model, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(emulator, trained_model.folder, tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def record() -> Callable[[ScenarioResult], ScenarioResult]:
    """Keep a scenario's result for the table printed at the end of the run."""

    def keep(result: ScenarioResult) -> ScenarioResult:
        _results.append(result)
        return result

    return keep


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if _results:
        terminalreporter.write_sep("-", "fault scenarios")
        terminalreporter.write_line(table(_results))
