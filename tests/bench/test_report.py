"""The report writer: results.json, the markdown table, the PNG plot."""

import json

from bench.figures import Figure, ms, skipped
from bench.report import cell, table, tracing_table, write
from bench.scenarios import tracing_row

RUN = {
    "started": "2026-11-26 14:00:00",
    "mode": "quick",
    "machine": {"nproc": 2, "cpu_model": "Test CPU", "memory_gb": 24.0, "kernel": "6.0",
                "loadavg": [0.1, 0.1, 0.1]},
    "load_before": [0.1, 0.1, 0.1],
    "load_after": [0.5, 0.2, 0.1],
    "elapsed_s": 90.0,
}  # fmt: skip


def wrk_figure() -> Figure:
    row = {
        "throughput_rps": 1600.0, "p50_ms": 3.0, "p99_ms": 8.0, "p99.9_ms": 9.0, "max_ms": 12.0,
        "client_cpu_cores": 0.1, "server_cpu_cores": {"predictor": 1.2},
        "percentiles_ms": {"50": 3.0, "90": 5.0, "99": 8.0, "99.9": 9.0},
    }  # fmt: skip
    return Figure(
        "predictor_direct", "Predictor alone", "wrk, 8 connections", "1,600 req/s",
        ">= 1,500 req/s", True, {"median": row, "runs": [row]},
    )  # fmt: skip


def sustained_figure() -> Figure:
    series = [(t / 10, 5.0 + (t % 7)) for t in range(200)]
    data = {
        "latency_ms": {"count": 200, "p50": 7.0, "p90": 10.0, "p99": 11.0, "p99.9": 11.0},
        "series": series,
        "windows": [{"start_s": 0.0, "p50_ms": 7.0, "p99_ms": 11.0},
                    {"start_s": 10.0, "p50_ms": 7.0, "p99_ms": 11.0}],
        "client_cpu_cores": 0.2, "max_send_lag_ms": 1.0, "connections_opened": 9,
        "server_cpu_cores": {"backend_a": 0.3},
    }  # fmt: skip
    return Figure("e2e_400", "Sustained | 400/s", "open loop", "p50 7 ms", "flat", False, data)


def test_table_has_a_row_per_figure_with_its_verdict():
    text = table([wrk_figure(), sustained_figure(), skipped("x", "Skipped one", "no wrk")])

    lines = text.splitlines()
    assert lines[0].startswith("| Measurement | Result | Target | Met |")
    assert len(lines) == 2 + 3
    assert "| yes |" in lines[2]
    assert "| **no** |" in lines[3]
    assert "skipped: no wrk" in lines[4]


def test_pipes_inside_a_cell_are_escaped():
    assert cell("a | b\nc") == "a \\| b c"


def test_milliseconds_are_formatted_for_people():
    assert ms(12.345) == "12.3 ms"
    assert ms(0.25) == "250 us"


def test_write_produces_json_markdown_and_png(tmp_path):
    figures = [wrk_figure(), sustained_figure()]

    write(tmp_path / "run", RUN, figures)

    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["machine"]["cpu_model"] == "Test CPU"
    assert [f["key"] for f in doc["figures"]] == ["predictor_direct", "e2e_400"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "2 cores (Test CPU), 24.0 GB memory" in report
    assert "latency by 10 s window" in report
    png = (tmp_path / "run" / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_tracing_settings_side_by_side_per_push_and_per_ride(tmp_path):
    push = {"throughput_rps": 1000.0, "p50_ms": 4.0, "p99_ms": 9.0,
            "server_cpu_cores": {"predictor": 0.8, "emulator": 0.5}}  # fmt: skip
    rides = {
        "offered_per_s": 100.0,
        "right": 500,
        "sent": 500,
        "latency_ms": {"p50": 6.0, "p99": 20.0},
        "server_cpu_cores": {"backend_0": 0.1, "backend_1": 0.12, "predictor": 0.1},
    }
    off = tracing_row("off", push, rides)
    on = tracing_row("on, 10% sampled", push | {"throughput_rps": 800.0}, rides)

    assert off["predictor_cpu_ms_per_push"] == 0.8
    assert on["predictor_cpu_ms_per_push"] == 1.0
    assert round(off["backend_cpu_ms_per_ride"], 6) == 2.2  # the backends' CPU, not the predictor's
    lines = tracing_table([off, on]).splitlines()
    assert lines[2].startswith("| off | 0.80 ms (1,000 pushes/s) | 4.00 / 9.00 ms | 2.20 ms |")
    assert lines[3].startswith("| on, 10% sampled | 1.00 ms")
    write(tmp_path, RUN, [Figure("tracing", "Tracing", "", "", data={"tracing": [off, on]})])
    assert "\n".join(lines) in (tmp_path / "report.md").read_text()
