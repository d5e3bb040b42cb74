"""A tiny bench run on the real stack: the tooling measures real processes end to end."""

import json

import pytest

from bench import direct, e2e, lifecycle, setup, wrk
from bench.report import write
from devstack.measure import machine

pytestmark = [pytest.mark.emulator, pytest.mark.slow]


def test_tiny_bench_on_a_real_stack(make_stack, trained_model, tmp_path):
    stack = make_stack(backends=1)
    rides = setup.sample_rides(20)
    expected = setup.expected_durations(trained_model.folder, rides)
    roots = {"backend": [stack.backends[0].process.pid]}

    found = e2e.run_rate(
        [stack.backends[0].url], rides, expected, rate=20, duration_s=1.5,
        cpu_roots=roots, progress=lambda _: None,
    )  # fmt: skip
    figures = [e2e.figure_100(found, e2e.conditions(20, 1.5, 1, 1))]
    if wrk.available():
        bodies = [json.dumps(ride).encode() for ride in rides]
        estimate = direct.measure(
            stack.backends[0].url, "/estimate", bodies, runs=1, duration_s=1, cpu_roots=roots,
            progress=lambda _: None,
        )  # fmt: skip
        figures.append(direct.figure("estimate_1", "/estimate", "", 0, 1e9, estimate, 1, 1, ""))
    memory = lifecycle.pss(stack.predictor)
    run = {"started": "now", "mode": "smoke", "machine": machine(), "load_before": [],
           "load_after": [], "elapsed_s": 1.0}  # fmt: skip
    write(tmp_path / "run", run, figures)

    assert found["right"] == found["sent"] == 30
    assert found["crossed"] == 0
    assert memory["total"] > 10
    assert (tmp_path / "run" / "latency.png").is_file()
