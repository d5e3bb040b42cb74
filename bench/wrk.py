"""Closed-loop load with wrk: a compiled client, so the client is not what is measured.

A Lua script cycles through prepared POST bodies and prints a JSON summary (percentiles from
wrk's own histogram) when the run ends; wrk's CPU time comes from os.wait4 on its process.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    socket_errors: int
    non_2xx: int
    percentiles_ms: dict[str, float]
    mean_ms: float
    max_ms: float
    client_cpu_cores: float  # wrk's own CPU: near 1 per thread means the client is the limit

    @property
    def throughput(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "throughput_rps": round(self.throughput, 1),
            "socket_errors": self.socket_errors,
            "non_2xx": self.non_2xx,
            "p50_ms": self.percentiles_ms["50"],
            "p90_ms": self.percentiles_ms["90"],
            "p99_ms": self.percentiles_ms["99"],
            "p99.9_ms": self.percentiles_ms["99.9"],
            "mean_ms": round(self.mean_ms, 3),
            "max_ms": self.max_ms,
            "percentiles_ms": self.percentiles_ms,
            "client_cpu_cores": round(self.client_cpu_cores, 3),
        }


def parse_output(stdout: str, client_cpu_s: float) -> WrkResult:
    """Read the WRK_JSON line the script's done() prints."""
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            doc = json.loads(line.removeprefix("WRK_JSON "))
            break
    else:
        raise RuntimeError(f"wrk printed no summary:\n{stdout[-2000:]}")
    duration_s = doc["duration_us"] / 1e6
    return WrkResult(
        requests=doc["requests"],
        duration_s=duration_s,
        socket_errors=doc["socket_errors"],
        non_2xx=doc["non_2xx"],
        percentiles_ms={k: v / 1000 for k, v in doc["percentiles_us"].items()},
        mean_ms=doc["mean_us"] / 1000,
        max_ms=doc["max_us"] / 1000,
        client_cpu_cores=client_cpu_s / duration_s if duration_s else 0.0,
    )


def run(
    base_url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    connections: int,
    duration_s: float,
    threads: int = 1,
    timeout_s: float = 5.0,
) -> WrkResult:
    """Run wrk against `base_url` + `path` with `connections` keep-alive connections."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as scratch:
        lua = Path(scratch) / "post.lua"
        lua.write_text(script(path, bodies))
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={timeout_s:g}s",
            "-s",
            str(lua),
            base_url.rstrip("/") + "/",
        ]
        out = Path(scratch) / "out.txt"
        with out.open("wb") as sink:
            process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + duration_s + 30
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    process.kill()
                    pid, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.05)
            process.returncode = os.waitstatus_to_exitcode(status)
        text = out.read_text(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{text[-2000:]}")
    return parse_output(text, usage.ru_utime + usage.ru_stime)
