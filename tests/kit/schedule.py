"""The order in which `make test` hands the test files to its pytest-xdist workers
(`--dist loadfile --no-loadscope-reorder`): the longest first.

A file goes to one worker whole, so its tests share the module fixtures they build. Workers take
the files in collection order, a new one when the one they run is nearly done; pytest-xdist's own
order (the files with the most tests first) sent the files of one or a few long tests (the fault
drills, a full stack's promotion and rollback) last, to finish long after the other workers had
run out of work. Here the longest go first, so that the many short files fill the end evenly:
the files whose tests each build a fault lab of their own (the `lab` fixture), then the files
with a test marked `slow`, then those on an emulator, then the rest; within each, the files with
the most tests first.
"""

import pytest


def _rank(items: list[pytest.Item]) -> int:
    if any("lab" in getattr(item, "fixturenames", ()) for item in items):
        return 0
    if any(item.get_closest_marker("slow") for item in items):
        return 1
    if any(item.get_closest_marker("emulator") for item in items):
        return 2
    return 3


def longest_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The tests, their files in the order above; the order within each file kept."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)
    order = sorted(files.values(), key=lambda tests: (_rank(tests), -len(tests)))
    return [item for tests in order for item in tests]
