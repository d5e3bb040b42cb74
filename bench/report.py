"""Write a run's results: results.json, report.md (the table) and latency.png."""

import json
from pathlib import Path
from typing import Any

from .figures import Figure

PLOTTED_PERCENTILES = ("50", "90", "99", "99.9")


def cell(text: str) -> str:
    """Make `text` safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def table(figures: list[Figure]) -> str:
    """Return the markdown results table."""
    lines = ["| Measurement | Result | Target | Met | Conditions |", "|---|---|---|---|---|"]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "-"}[f.met]
        lines.append(
            f"| {cell(f.title)} | {cell(f.result)} | {cell(f.target or '-')} | {met} "
            f"| {cell(f.conditions)} |"
        )
    return "\n".join(lines)


def tracing_table(rows: list[dict[str, Any]]) -> str:
    """Return the markdown table of the tracing settings, side by side, in run order."""
    lines = [
        "| Tracing | Predictor CPU per push | Push p50 / p99 | Backend CPU per ride "
        "| Ride p50 / p99 | Right |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tracing']} | {r['predictor_cpu_ms_per_push']:.2f} ms "
            f"({r['push_rps']:,.0f} pushes/s) | {r['push_p50_ms']:.2f} / {r['push_p99_ms']:.2f} ms "
            f"| {r['backend_cpu_ms_per_ride']:.2f} ms | {r['ride_p50_ms']:.1f} / "
            f"{r['ride_p99_ms']:.1f} ms | {r['rides_right']} |"
        )
    return "\n".join(lines)


def markdown(run: dict[str, Any], figures: list[Figure]) -> str:
    """Return report.md: the machine, the load around the run, the table, and the details."""
    machine = run["machine"]
    parts = [
        f"# Benchmark results, {run['started']}",
        "",
        f"- Machine: {machine['nproc']} cores ({machine['cpu_model']}), {machine['memory_gb']} "
        f"GB memory, Linux {machine['kernel']}",
        f"- Load average (1/5/15 min) before: {run['load_before']}, after: {run['load_after']}",
        f"- Mode: {run['mode']}; took {run['elapsed_s']:.0f} s",
        "",
        table(figures),
        "",
        "CPU figures are cores busy over the measurement (1.0 = one core all the time); the load "
        "generator's own CPU is listed with each run so that a saturated client shows.",
        "",
    ]
    for f in figures:
        if runs := f.data.get("runs"):
            parts += [f"## {f.title}: every run", ""]
            parts += [
                f"- {row['throughput_rps']:,.0f} req/s, p50 {row['p50_ms']:.2f} ms, p99 "
                f"{row['p99_ms']:.2f} ms, p99.9 {row['p99.9_ms']:.2f} ms, max "
                f"{row['max_ms']:.1f} ms; wrk {row['client_cpu_cores']:.2f} cores; "
                f"servers {row['server_cpu_cores']}"
                for row in runs
            ] + [""]
        if "windows" in f.data:
            parts += [f"## {f.title}: latency by 10 s window", ""]
            parts += [
                f"- {w['start_s']:.0f} s: p50 {w['p50_ms']:.1f} ms, p99 {w['p99_ms']:.1f} ms"
                for w in f.data["windows"]
            ]
            parts += [
                f"- load generator {f.data['client_cpu_cores']:.2f} cores, latest send "
                f"{f.data['max_send_lag_ms']:.1f} ms behind schedule, "
                f"{f.data['connections_opened']} connections; servers {f.data['server_cpu_cores']}",
                "",
            ]
        if "tracing" in f.data:
            parts += [f"## {f.title}", "", tracing_table(f.data["tracing"]), ""]
        if "rates" in f.data:
            parts += [f"## {f.title}: every rate", ""]
            parts += [
                f"- {row['rate']:g}/s: {row['delivered']}/{row['sent']} delivered, p50 "
                f"{row['latency_ms'].get('p50', 0):.1f} ms, p99 "
                f"{row['latency_ms'].get('p99', 0):.1f} ms"
                for row in [f.data["idle"], *f.data["rates"]]
            ] + [""]
    return "\n".join(parts)


def _curves(figures: list[Figure]) -> dict[str, list[float]]:
    curves = {}
    for f in figures:
        median = f.data.get("median")
        if median and "percentiles_ms" in median:
            curves[f.title] = [median["percentiles_ms"][p] for p in PLOTTED_PERCENTILES]
        elif "latency_ms" in f.data and f.data["latency_ms"].get("count"):
            lat = f.data["latency_ms"]
            curves[f.title] = [lat[f"p{p}"] for p in PLOTTED_PERCENTILES]
    return curves


def plot(figures: list[Figure], path: Path) -> None:
    """Draw latency percentiles of each scenario, and the sustained run's latency over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    positions = range(len(PLOTTED_PERCENTILES))
    curves = _curves(figures)
    for title, values in curves.items():
        left.plot(positions, values, marker="o", label=title)
    left.set_xticks(positions, PLOTTED_PERCENTILES)
    left.set_yscale("log")
    left.set_xlabel("percentile")
    left.set_ylabel("latency, ms (log scale)")
    left.set_title("Latency percentiles")
    left.grid(True, which="both", alpha=0.3)
    if curves:
        left.legend(fontsize=7)
    sustained = next((f for f in figures if f.key == "e2e_400" and f.data.get("series")), None)
    if sustained is not None:
        times, values = zip(*sustained.data["series"], strict=True)
        right.scatter(times, values, s=2, alpha=0.3, label="each ride")
        starts = [w["start_s"] + 5 for w in sustained.data["windows"]]
        right.plot(starts, [w["p50_ms"] for w in sustained.data["windows"]], "k-o", label="p50")
        right.plot(starts, [w["p99_ms"] for w in sustained.data["windows"]], "r-o", label="p99")
        right.set_yscale("log")
        right.legend(fontsize=7)
    right.set_xlabel("seconds into the run")
    right.set_ylabel("POST /rides latency, ms (log scale)")
    right.set_title(sustained.title if sustained else "no sustained run")
    right.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(folder: Path, run: dict[str, Any], figures: list[Figure]) -> None:
    """Write results.json, report.md and latency.png into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = run | {"figures": [f.as_dict() for f in figures]}
    (folder / "results.json").write_text(json.dumps(doc, indent=2, default=str))
    (folder / "report.md").write_text(markdown(run, figures))
    plot(figures, folder / "latency.png")
