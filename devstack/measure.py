"""What processes cost, read from /proc: CPU seconds, memory, threads, descriptors; the machine."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .processes import process_tree

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """Return the user plus system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone since the tree was read
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def pss_bytes(pid: int) -> int:
    """Return one process's proportional set size: shared pages count once in a sum."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no Pss line for {pid}")


def tree_pss_mb(pid: int) -> dict[str, float]:
    """Return the PSS of a process tree in MB: total and per process."""
    each = {}
    for member in process_tree(pid):
        try:
            each[member] = pss_bytes(member) / 1e6
        except (OSError, ValueError):
            continue
    return {
        "total": sum(each.values()),
        "processes": float(len(each)),
        "largest": max(each.values(), default=0.0),
    }


def pids_matching(text: str) -> list[int]:
    """Return the PIDs whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


class CpuMeter:
    """Measure the CPU cores a set of process trees used between start() and stop()."""

    def __init__(self, roots: dict[str, list[int]]) -> None:
        self.roots = roots
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def _now(self) -> dict[str, float]:
        return {
            name: cpu_seconds([p for root in pids for p in process_tree(root)])
            for name, pids in self.roots.items()
        }

    def start(self) -> None:
        self._start, self._t0 = self._now(), time.monotonic()

    def stop(self) -> dict[str, float]:
        """Return cores used per tree (1.0 = one core busy all the time)."""
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        now = self._now()
        return {name: round((now[name] - self._start[name]) / elapsed, 3) for name in now}


def machine() -> dict[str, object]:
    """Describe this machine: cores, CPU model, memory, and the load right now."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": os.uname().release,
        "loadavg": load(),
    }


def load() -> list[float]:
    """Return the 1, 5 and 15 minute load averages."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


@dataclass(frozen=True)
class ProcessStats:
    pid: int
    rss_kb: int
    threads: int
    fds: int


def process_stats(pid: int) -> ProcessStats | None:
    """Resident memory, threads and open file descriptors of one process, or None if gone."""
    try:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except (OSError, ValueError):
        return None
    return ProcessStats(pid, int(status["VmRSS"].split()[0]), int(status["Threads"].strip()), fds)
