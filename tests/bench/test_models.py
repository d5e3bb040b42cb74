"""bench.models: the side-by-side table of the predictor serving each kind of model."""

from bench.models import table

ROW = {
    "case": "native-registry", "what": "booster, registry", "venv": "image-like",
    "cold_start_s": [1.5, 1.25, 1.75], "download_s": [1.0, 0.75, 1.25], "cold_start_median_s": 1.5,
    "pss_mb": {"total": 96.4, "processes": 2.0},
}  # fmt: skip


def test_table_splits_the_cold_start_into_download_and_the_rest():
    line = table([ROW]).splitlines()[-1]

    assert "1.50 s (1.50, 1.25, 1.75; download 1.00 s, the rest 0.50 s)" in line
    assert "96 MB (2 processes)" in line


def test_a_case_that_did_not_start_says_so():
    row = {"case": "course", "what": "course pipeline", "error": "exited"}

    line = table([row]).splitlines()[-1]

    assert line == "| course pipeline | refused to start | - | - |"
