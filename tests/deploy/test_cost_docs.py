"""docs/deploy.md's cost tables add up, and speak of the sizes the build deploys."""

import re

import pytest

from tests.kit import cloudbuild
from tests.kit.deploy_scripts import ROOT

DOC = (ROOT / "docs" / "deploy.md").read_text()


def table(title: str) -> list[list[str]]:
    """The rows of the markdown table whose header starts with `title`."""
    start = DOC.index(f"| {title}")
    lines = DOC[start:].split("\n\n", 1)[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def dollars(cell: str) -> float:
    """A cell's amount: the sum of its $ figures, the upper end of a range."""
    return sum(
        float(m.split("-")[-1].replace(",", ""))
        for m in re.findall(r"\$([\d.,]+(?:-[\d.]+)?)", cell)
    )


@pytest.mark.parametrize("column", [1, 2, 3, 4], ids=["idle", "1/s", "10/s", "100/s"])
def test_each_monthly_total_is_the_sum_of_its_items(column: int) -> None:
    rows = table("Monthly cost")
    items, total = rows[:-1], rows[-1]

    added = sum(dollars(row[column]) for row in items)

    stated = dollars(total[column])
    if "under" in total[column]:
        assert added <= stated
    else:
        assert added == pytest.approx(stated, rel=0.01)


def test_the_cap_figures_are_the_builds_defaults() -> None:
    subs = cloudbuild.load()["substitutions"]
    header = DOC[DOC.index("| | Backend (") :].splitlines()[0]

    memory = subs["_BACKEND_MEMORY"].replace("Mi", " MiB")
    backend = f"{subs['_BACKEND_MAX_INSTANCES']} × 1 vCPU, {memory}"
    predictor = f"{subs['_PREDICTOR_MAX_INSTANCES']} × {subs['_PREDICTOR_CPU']} vCPU, 1 GiB"
    assert backend in header and predictor in header
    assert subs["_PREDICTOR_MEMORY"] == "1Gi" and subs["_PREDICTOR_MIN_INSTANCES"] == "0"
