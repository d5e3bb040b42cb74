"""What the emulator alone costs: publish to a push subscription whose endpoint does nothing."""

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from google.cloud import pubsub_v1

from devstack.emulator import Emulator
from devstack.processes import Process, free_port, port_open, wait_until
from devstack.pubsub import provision
from devstack.stack import ROOT, isolated_settings

from .stats import summarize

SETTLE_S = 10.0  # how long to wait for the last deliveries


@contextmanager
def noop_endpoint(workdir: Path) -> Iterator[int]:
    """Run bench.noop on a free port; yield the port."""
    port = free_port()
    process = Process(
        "noop-push",
        [sys.executable, "-m", "bench.noop", str(port)],
        dict(os.environ) | {"PYTHONPATH": str(ROOT)},
        workdir / f"noop-{port}.log",
    )
    process.start()
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 10, what="the no-op push endpoint")
        yield port
    finally:
        process.stop(timeout_s=5)


def _stats(url: str) -> list[float]:
    with urllib.request.urlopen(f"{url}/stats", timeout=5) as response:
        return list(json.loads(response.read())["latencies_ms"])


def _publisher(address: str) -> pubsub_v1.PublisherClient:
    # A 0.5 ms batching delay: the stamp is taken before it, so it counts in the figure.
    settings = pubsub_v1.types.BatchSettings(max_latency=0.0005, max_messages=100)
    with mock.patch.dict(os.environ, {"PUBSUB_EMULATOR_HOST": address}):
        return pubsub_v1.PublisherClient(batch_settings=settings)


def _send(client: Any, topic: str, rate: float, count: int, url: str) -> dict[str, Any]:
    """Publish `count` stamped messages at `rate` a second; collect what the endpoint saw."""
    started = time.monotonic()
    futures = []
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        futures.append(client.publish(topic, json.dumps({"sent": time.time()}).encode()))
    for future in futures:
        future.result(timeout=30)
    seen: list[float] = []
    deadline = time.monotonic() + SETTLE_S
    while len(seen) < count and time.monotonic() < deadline:
        time.sleep(0.25)
        seen.extend(_stats(url))
    seen.extend(_stats(url))
    return {"rate": rate, "sent": count, "delivered": len(seen), "latency_ms": summarize(seen)}


def measure(
    emulator: Emulator, workdir: Path, rates: Sequence[float], seconds_each: float,
    idle_messages: int, progress: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    """Deliveries to a no-op endpoint: at each rate, and one at a time on an idle subscription."""
    with noop_endpoint(workdir) as port:
        url = f"http://127.0.0.1:{port}"
        # Topics of their own, pushed to the endpoint as a stack's are to its predictor.
        topology = isolated_settings(emulator, workdir, backends=0, predictor_port=port).topology
        provision(topology, emulator.address)
        client = _publisher(emulator.address)
        topic = topology.topic_path(topology.rides_topic)
        try:
            found: dict[str, Any] = {"idle": _send(client, topic, 1.0, idle_messages, url)}
            progress(f"  idle, 1/s: p50 {found['idle']['latency_ms'].get('p50', 0):.1f} ms")
            found["rates"] = []
            for rate in rates:
                row = _send(client, topic, rate, int(rate * seconds_each), url)
                found["rates"].append(row)
                lat = row["latency_ms"]
                progress(
                    f"  {rate:g}/s: {row['delivered']}/{row['sent']} delivered, "
                    f"p50 {lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms"
                )
        finally:
            client.stop()
    return found


WARM_UP_RATE = 500.0  # messages a second


def warm_up(emulator: Emulator, workdir: Path, seconds: float) -> str:
    """Put the emulator under load before anything is measured; return what it delivered.

    Its JVM compiles the publish and push paths during the first seconds of load: in one run
    the emulator spent 0.74 cores on the predictor's publishes in the first 10 s and 0.33 in
    the third, at a higher rate.
    """
    found = measure(emulator, workdir, (WARM_UP_RATE,), seconds, 0, lambda _: None)
    row = found["rates"][0]
    p50 = row["latency_ms"].get("p50", 0)
    return f"{row['delivered']}/{row['sent']} delivered, p50 {p50:.1f} ms"
