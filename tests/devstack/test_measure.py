"""Reading CPU time and PSS from /proc, and describing the machine."""

import os

from devstack.measure import CpuMeter, cpu_seconds, machine, pss_bytes, tree_pss_mb


def test_this_process_has_used_cpu_and_memory():
    assert cpu_seconds([os.getpid()]) > 0
    assert pss_bytes(os.getpid()) > 1_000_000


def test_tree_pss_sums_the_processes():
    found = tree_pss_mb(os.getpid())

    assert found["processes"] >= 1
    assert found["total"] >= found["largest"] > 1


def test_cpu_meter_sees_a_busy_loop():
    meter = CpuMeter({"self": [os.getpid()]})
    meter.start()
    total = 0
    for i in range(3_000_000):
        total += i

    assert meter.stop()["self"] > 0


def test_machine_names_cores_cpu_and_memory():
    found = machine()

    assert found["nproc"] == os.cpu_count()
    assert found["memory_gb"] > 0
    assert len(found["loadavg"]) == 3
