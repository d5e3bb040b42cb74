"""The wrk script and the parsing of its summary."""

import pytest

from bench.wrk import lua_string, parse_output, script

SUMMARY = (
    'Running 5s test\nWRK_JSON {"requests":5000,"duration_us":5000000,"socket_errors":0,'
    '"non_2xx":3,"max_us":20000,"mean_us":2500.0,"percentiles_us":{"50":2000,"90":4000,'
    '"99":9000,"99.9":15000}}\n'
)


def test_summary_is_read_from_the_marked_line():
    result = parse_output(SUMMARY, client_cpu_s=1.0)

    assert result["throughput_rps"] == 1000
    assert result["non_2xx"] == 3
    assert result["percentiles_ms"]["99"] == 9.0
    assert result["client_cpu_cores"] == pytest.approx(0.2)
    assert result["p50_ms"] == 2.0


def test_missing_summary_is_an_error():
    with pytest.raises(RuntimeError):
        parse_output("wrk: connection refused\n", client_cpu_s=0)


def test_bodies_are_quoted_for_lua():
    assert lua_string('{"a": "b\\\\c"}') == '"{\\"a\\": \\"b\\\\\\\\c\\"}"'


def test_script_posts_every_body_in_turn():
    text = script("/estimate", [b'{"x": 1}', b'{"x": 2}'])

    assert '"/estimate"' in text
    assert '"{\\"x\\": 1}", "{\\"x\\": 2}"' in text
    assert "WRK_JSON" in text
