"""Closed-loop load with wrk: a compiled client, so the client is not what is measured.

A Lua script cycles through prepared POST bodies and prints a JSON summary (percentiles from
wrk's own histogram) when the run ends; wrk's CPU time comes from os.wait4 on its process.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Points of the latency distribution kept for the plot and the table.
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9)

_SCRIPT = """
local bodies = {%(bodies)s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  local points = {}
  for _, p in ipairs({%(percentiles)s}) do
    table.insert(points, string.format('"%%g":%%d', p, latency:percentile(p)))
  end
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"duration_us":%%d,"socket_errors":%%d,"non_2xx":%%d,'
    .. '"max_us":%%d,"mean_us":%%.1f,"percentiles_us":{%%s}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency.max, latency.mean, table.concat(points, ",")))
end
"""


def available() -> bool:
    """Say whether the wrk binary is on PATH."""
    return shutil.which("wrk") is not None


def lua_string(text: str) -> str:
    """Quote `text` as a Lua string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def script(path: str, bodies: Sequence[bytes]) -> str:
    """Return a wrk Lua script that POSTs `bodies` to `path` in turn and reports JSON."""
    return _SCRIPT % {
        "bodies": ", ".join(lua_string(body.decode()) for body in bodies),
        "path": path,
        "percentiles": ", ".join(f"{p:g}" for p in PERCENTILES),
    }


def parse_output(stdout: str, client_cpu_s: float) -> dict[str, Any]:
    """Read the WRK_JSON line the script's done() prints; wrk's own CPU comes as cores."""
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            doc = json.loads(line.removeprefix("WRK_JSON "))
            break
    else:
        raise RuntimeError(f"wrk printed no summary:\n{stdout[-2000:]}")
    duration_s = doc["duration_us"] / 1e6
    percentiles = {k: v / 1000 for k, v in doc["percentiles_us"].items()}
    return {
        "requests": doc["requests"],
        "duration_s": round(duration_s, 3),
        "throughput_rps": round(doc["requests"] / duration_s, 1) if duration_s else 0.0,
        "socket_errors": doc["socket_errors"],
        "non_2xx": doc["non_2xx"],
        **{f"p{p}_ms": percentiles[p] for p in ("50", "90", "99", "99.9")},
        "mean_ms": round(doc["mean_us"] / 1000, 3),
        "max_ms": doc["max_us"] / 1000,
        "percentiles_ms": percentiles,
        # Near 1 per thread: the client is the limit.
        "client_cpu_cores": round(client_cpu_s / duration_s, 3) if duration_s else 0.0,
    }


def run(
    base_url: str, path: str, bodies: Sequence[bytes], *, connections: int, duration_s: float
) -> dict[str, Any]:
    """Run wrk (one thread) against `base_url` + `path` with `connections` keep-alive ones."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as scratch:
        lua, out = Path(scratch) / "post.lua", Path(scratch) / "out.txt"
        lua.write_text(script(path, bodies))
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
                "--timeout=5s", "-s", str(lua), base_url.rstrip("/") + "/"]  # fmt: skip
        with out.open("wb") as sink:
            process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
            guard = threading.Timer(duration_s + 30, process.kill)  # a hung wrk is killed
            guard.start()
            _, status, usage = os.wait4(process.pid, 0)  # its CPU time with its exit
            guard.cancel()
            process.returncode = os.waitstatus_to_exitcode(status)
        text = out.read_text(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{text[-2000:]}")
    return parse_output(text, usage.ru_utime + usage.ru_stime)
