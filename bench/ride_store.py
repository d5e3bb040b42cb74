"""Ride state in memory against Firestore, and what fanning results out to every backend costs.

`make bench-ride-store` (`python -m bench.ride_store`) starts its own Pub/Sub and Firestore
emulators and measures, on stacks of their own: POST /rides latency and CPU per ride with 2
backends, the stores alternating (memory, firestore, ...); then 8 backends on Firestore and the
deliveries, sizes and cost of every result fanned out to them. docs/benchmarks.md ("Ride state")
says how, and has the tables. Writes bench/results/ride-store-<time>.json.
"""

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from deadletters import fetch
from devstack.emulator import Emulator
from devstack.emulator import unavailable_reason as pubsub_unavailable
from devstack.firestore import FirestoreEmulator
from devstack.firestore import unavailable_reason as firestore_unavailable
from devstack.measure import load, machine, pids_matching
from devstack.processes import free_port
from devstack.proxy import ProxyProcess
from devstack.pubsub import emulator_clients, subscriptions_of
from devstack.stack import ROOT, Stack, start_isolated

from . import e2e, emulator_limit, setup

RESULTS = ROOT / "bench" / "results"
log = logging.getLogger("bench.ride_store")

# Pub/Sub's price of message delivery and ingestion (https://cloud.google.com/pubsub/pricing).
PRICE_PER_TIB = 40.0
MIN_BYTES_PER_REQUEST = 1000  # "per publish, push or pull request", whatever the message size
TIMESTAMP_BYTES = 20  # counted in every message's billed size, with its message_id
MONTH_S = 30 * 86_400
SETTLE_S = 30.0  # longest wait for the recorder to write the last results of a run
NO_ONE = "no-such-process"  # a reply_to no backend has: a filter on it matches nothing


def stack_roots(
    stack: Stack, emulator: Emulator, firestore: FirestoreEmulator | None
) -> dict[str, list[int]]:
    """The process trees whose CPU each run measures, by role."""
    roots = {
        "backends": [b.process.pid or 0 for b in stack.backends],
        "predictor": [stack.predictor.process.pid or 0],
        "pubsub_emulator": pids_matching(f"--host-port={emulator.address}"),
    }
    if firestore is not None:
        roots["firestore_emulator"] = pids_matching(f"--host-port={firestore.address}")
    return roots


class RideDocuments:
    """Count the stack's ride documents in Firestore: all of them, and those still pending."""

    def __init__(self, stack: Stack) -> None:
        from google.cloud import firestore  # only the Firestore runs need it

        self._client = firestore.Client(project=stack.settings.project)
        # The collection the stack gave its backends (one per stack: stacks share the emulator).
        self._rides = self._client.collection(stack.backends[0].process.env["RIDES_COLLECTION"])
        self._pending = self._rides.where(filter=firestore.FieldFilter("results", "==", []))

    def counts(self) -> dict[str, int]:
        total = self._rides.count().get(timeout=10)[0][0].value
        pending = self._pending.count().get(timeout=10)[0][0].value
        return {"documents": int(total), "done": int(total - pending), "pending": int(pending)}

    def settle(self, timeout_s: float = SETTLE_S) -> dict[str, int]:
        """Wait until no ride is pending, or the count stops moving, or time is up."""
        deadline = time.monotonic() + timeout_s
        last, still = self.counts(), 0
        while last["pending"] and still < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.counts()
            still = still + 1 if now == last else 0
            last = now
        return last

    def close(self) -> None:
        self._client.close()


class FilterProbes:
    """Two subscriptions of our own on the results topic, each with a filter on reply_to.

    One matches no process; the other has one backend's own filter. Pulled after the run,
    they show whether the emulator applies filters: Pub/Sub would deliver nothing to the first
    and only that backend's results to the second.
    """

    def __init__(self, stack: Stack, subscriptions: list[str]) -> None:
        """`subscriptions`: those on the results topic now, the recorder's and the backends'."""
        s = stack.settings
        self.address, self.project, self.topic = stack.address, s.project, s.results_topic
        recorder = f"projects/{s.project}/subscriptions/{s.recorder_subscription}"
        self.listeners = [name for name in subscriptions if name != recorder]
        # A listener's subscription: <results topic>-<reply_to>-<generation>.
        own = self.listeners[0].rsplit("/", 1)[1][len(s.results_topic) + 1 :]
        self.reply_to = own.rsplit("-", 1)[0]
        self.names = {
            "matches_nothing": self._create("probe-none", NO_ONE),
            "one_backend": self._create("probe-one", self.reply_to),
        }

    def _create(self, prefix: str, reply_to: str) -> str:
        name = f"projects/{self.project}/subscriptions/{prefix}-{self.topic}"
        with emulator_clients(self.address) as (_, subscriber):
            subscriber.create_subscription(
                request={
                    "name": name,
                    "topic": f"projects/{self.project}/topics/{self.topic}",
                    "filter": f'attributes.reply_to = "{reply_to}"',
                    "ack_deadline_seconds": 600,  # no redelivery while they are counted
                },
                timeout=10,
            )
        return name

    def drain(self) -> dict[str, list[Any]]:
        """Pull every message each probe holds (bounded in time and calls), then delete it."""
        found: dict[str, list[Any]] = {}
        with emulator_clients(self.address) as (_, subscriber):
            for key, name in self.names.items():
                found[key] = fetch(subscriber, name, limit=1_000_000)  # deleted unacked
                subscriber.delete_subscription(request={"subscription": name}, timeout=10)
        return found


def message_bytes(message: Any) -> dict[str, int]:
    """A result message's data plus attributes, and what Pub/Sub's pricing counts of it."""
    data = len(message.data)
    attributes = sum(len(k.encode()) + len(v.encode()) for k, v in message.attributes.items())
    billed = data + attributes + TIMESTAMP_BYTES + len(message.message_id.encode())
    return {"data": data, "attributes": attributes, "billed": billed}


def filter_check(probes: FilterProbes, backends: int, sent: int) -> dict[str, Any]:
    """What each probe received, by the backend each ride was sent to (index mod backends)."""
    pulled = probes.drain()

    def owner(message: Any) -> int:
        """bench.e2e's ride_ids end with the request's index; requests go round-robin."""
        index = message.attributes.get("ride_id", "").rsplit("-", 1)[-1]
        return int(index) % backends if index.isdigit() else -1

    one = pulled["one_backend"]
    owners = Counter(owner(m) for m in one)
    sizes = [message_bytes(m) for m in one]
    applied = not pulled["matches_nothing"] and len(owners) == 1
    return {
        "matches_nothing_received": len(pulled["matches_nothing"]),
        "one_backend_received": len(one),
        "one_backend_reply_to": probes.reply_to,
        "one_backend_share_sent": sent // backends,
        "one_backend_by_owner": dict(sorted(owners.items())),
        "emulator_applies_filters": applied,
        "message_bytes": {key: spread([s[key] for s in sizes]) for key in sizes[0]}
        if sizes
        else {},
        "example": {"data": one[0].data.decode(), "attributes": dict(one[0].attributes)}
        if one
        else {},
    }


def spread(values: list[int]) -> dict[str, float]:
    return {"mean": round(sum(values) / len(values), 1), "min": min(values), "max": max(values)}


class RideStoreBench:
    """What the runs share: the model, the rides, both emulators."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.model = setup.ensure_model(retrain=False, progress=log.info)
        # More rides than one run sends: every body is a different ride, not only a new ride_id.
        self.rides = setup.sample_rides(args.rides)
        self.expected = setup.expected_durations(self.model.folder, self.rides)
        self.emulator = Emulator(free_port(), setup.PROJECT, workdir)
        self.firestore = FirestoreEmulator(free_port(), workdir)

    def start(self) -> None:
        self.emulator.start()
        self.firestore.start()
        # Our own clients (the ride counts) reach it; a stack sets it for its processes itself.
        os.environ["FIRESTORE_EMULATOR_HOST"] = self.firestore.address
        log.info(f"Pub/Sub emulator {self.emulator.address}, Firestore {self.firestore.address}")
        if self.args.emulator_warmup_s > 0:
            log.info(
                "warming the Pub/Sub emulator up: "
                + emulator_limit.warm_up(self.emulator, self.workdir, self.args.emulator_warmup_s)
            )

    def stop(self) -> None:
        self.emulator.stop()
        self.firestore.stop()

    def load(
        self, urls: list[str], rate: float, seconds: float, **roots: list[int]
    ) -> dict[str, Any]:
        found = e2e.run_rate(
            urls, self.rides, self.expected, rate=rate, duration_s=seconds, cpu_roots=roots,
            progress=log.info,
        )  # fmt: skip
        found.pop("series", None)
        return found

    def run(self, store: str, backends: int, rate: float, fanout: bool = False) -> dict[str, Any]:
        """One stack, one warm-up, one measured run; the stack stopped whatever happens."""
        firestore = self.firestore if store == "firestore" else None
        row: dict[str, Any] = {"store": store, "backends": backends, "rate": rate}
        row["load_before_start"] = load()
        with contextlib.ExitStack() as cleanup:
            reached = firestore  # where the backends reach Firestore: the emulator or a proxy
            if firestore is not None and self.args.firestore_delay_ms > 0:
                row["firestore_delay_ms_each_way"] = delay_ms = self.args.firestore_delay_ms
                tcp = ProxyProcess(firestore.address, "tcp", delay_s=delay_ms / 1000)
                cleanup.enter_context(tcp)
                row["delay_proxy_pid"] = tcp.pid
                reached = cast(FirestoreEmulator, SimpleNamespace(address=tcp.address))
            log.info(f"{store}: starting {backends} backends and the predictor")
            stack = start_isolated(
                self.emulator, self.workdir, firestore=reached, backends=backends,
                ride_store=store, predictor_workers=self.args.predictor_workers,
                tracking_uri=setup.TRACKING_URI, model_uri=str(self.model.folder),
            )  # fmt: skip
            cleanup.callback(stack.stop)
            documents = RideDocuments(stack) if firestore else None
            if documents is not None:
                cleanup.callback(documents.close)
            urls = [b.url for b in stack.backends]
            log.info(f"{store}: warm-up, {rate:g} rides/s for {self.args.warmup_s:g} s")
            warm = self.load(urls, rate, self.args.warmup_s)
            row["warmup"] = {k: warm[k] for k in ("sent", "right", "failed", "pending_202")}
            row["warmup"]["p50_ms"] = warm["latency_ms"].get("p50")
            if documents is not None:  # the warm-up's results all published and recorded
                row["documents_before"] = documents.settle()
            if fanout:
                s = stack.settings
                row["subscriptions"] = subscriptions_of(stack.address, s.project, s.results_topic)
                probes = FilterProbes(stack, row["subscriptions"])
            row["load_before"] = load()
            started = time.monotonic()
            found = self.load(
                urls, rate, self.args.seconds, **stack_roots(stack, self.emulator, firestore)
            )
            elapsed = time.monotonic() - started
            row["load_after"] = load()
            row |= summarize(found, elapsed)
            if documents is not None:
                after = documents.settle()
                row["documents_after"] = after
                row["results_recorded"] = after["done"] - row["documents_before"]["done"]
            if fanout:
                row["filters"] = filter_check(probes, backends, found["sent"])
        log.info(describe(row))
        return row


def summarize(found: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """The figures of one measured run: latency, answers, pace, CPU per ride by role."""
    cpu = {role: cores * elapsed for role, cores in found["server_cpu_cores"].items()}
    lat = found["latency_ms"]
    answered_200 = found["right"] + found["crossed"]
    sent = found["sent"]
    per_ride_ms = 1000 / sent if sent else 0.0
    return {
        "sent": sent,
        "p50_ms": round(lat.get("p50", 0.0), 1),
        "p99_ms": round(lat.get("p99", 0.0), 1),
        "share_200": round(answered_200 / sent, 4) if sent else 0.0,
        "right": found["right"],
        "crossed": found["crossed"],
        "pending_202": found["pending_202"],
        "failed": found["failed"],
        "unanswered": found["unanswered"],
        "failed_examples": found["failed_examples"],
        "answered_per_s": found["answered_per_s"],
        "kept_pace": found["answered_per_s"] >= e2e.MIN_PACE * found["offered_per_s"],
        "windows": found["windows"],
        "elapsed_s": round(elapsed, 2),
        "cpu_s": {role: round(s, 3) for role, s in cpu.items()},
        "cpu_cores": found["server_cpu_cores"],
        "cpu_ms_per_ride": {role: round(s * per_ride_ms, 3) for role, s in cpu.items()},
        "client_cpu_cores": found["client_cpu_cores"],
    }  # fmt: skip


def describe(row: dict[str, Any]) -> str:
    cpu = row.get("cpu_ms_per_ride", {})
    text = (
        f"{row['store']}, {row['backends']} backends, {row['rate']:g} rides/s: p50 "
        f"{row.get('p50_ms', 0):.1f} ms, p99 {row.get('p99_ms', 0):.1f} ms; 200 with the ride's "
        f"own duration {row.get('right', 0)}/{row.get('sent', 0)} (share 200 "
        f"{row.get('share_200', 0):.2%}), crossed {row.get('crossed', 0)}, 202 "
        f"{row.get('pending_202', 0)}, failed {row.get('failed', 0)}, unanswered "
        f"{row.get('unanswered', 0)}; answered {row.get('answered_per_s', 0):g} rides/s; backend "
        f"CPU {cpu.get('backends', 0):.2f} ms/ride; load {row['load_before'][0]:.2f} -> "
        f"{row['load_after'][0]:.2f}"
    )
    if not row.get("kept_pace", True):
        text += f"; DID NOT KEEP PACE: answered {row['answered_per_s']:g} of {row['rate']:g}/s"
    return text


def fanout_figures(row: dict[str, Any]) -> dict[str, Any]:
    """Deliveries per result, billed and on the wire, and the monthly cost at the run's rate."""
    subscriptions = len(row["subscriptions"])  # ours and the recorder, before the probes
    filters = row["filters"]
    sizes = filters["message_bytes"]
    results_per_s = row["rate"]
    billed = subscriptions  # Pub/Sub bills a filtered-out message as delivered
    figures: dict[str, Any] = {
        "results_answered_200": row["right"] + row["crossed"],
        "results_recorded": row.get("results_recorded"),
        "subscriptions_on_results_topic": subscriptions,
        "billed_deliveries_per_result": billed,
        "wire_deliveries_per_result_pubsub": 2,  # the owner's filtered one, and the recorder
        # Without filters every subscription gets every result, so every backend does.
        "wire_deliveries_per_result_emulator": 2 if filters["emulator_applies_filters"] else billed,
    }
    if sizes:
        raw = sizes["data"]["mean"] + sizes["attributes"]["mean"]
        per_delivery = {
            "data_plus_attributes": raw,
            "billed_size": sizes["billed"]["mean"],
            "min_per_request": float(MIN_BYTES_PER_REQUEST),
        }
        figures["cost_at_run_rate"] = {
            basis: monthly(results_per_s, billed, size) for basis, size in per_delivery.items()
        }
    return figures


def monthly(results_per_s: float, deliveries: int, size: float) -> dict[str, float]:
    """Bytes and dollars a month for `deliveries` of every result (the publish not counted)."""
    per_month = results_per_s * deliveries * size * MONTH_S
    return {
        "bytes_per_delivery": size,
        "bytes_per_month": per_month,
        "tib_per_month": round(per_month / 2**40, 4),
        "usd_per_month": round(per_month / 2**40 * PRICE_PER_TIB, 2),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )  # fmt: skip
    parser.add_argument(
        "--only", nargs="+", default=["compare", "fanout"], choices=["compare", "fanout"],
        help="the measurements to run (default: both)",
    )  # fmt: skip
    parser.add_argument("--rate", type=float, default=100, help="compare: rides/s (100)")
    parser.add_argument("--pairs", type=int, default=2, help="compare: memory+firestore pairs")
    parser.add_argument("--fanout-rate", type=float, default=200, help="fan-out: rides/s (200)")
    parser.add_argument("--fanout-backends", type=int, default=8, help="fan-out: backends (8)")
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per run")
    parser.add_argument("--warmup-s", type=float, default=5, help="warm-up per run, not counted")
    parser.add_argument(
        "--firestore-delay-ms", type=float, default=0,
        help="the backends reach Firestore through a proxy that holds every byte this "
        "long each way (0: direct)",
    )  # fmt: skip
    parser.add_argument("--predictor-workers", type=int, default=2)
    parser.add_argument("--rides", type=int, default=6000, help="distinct rides to sample")
    parser.add_argument(
        "--emulator-warmup-s", type=float, default=8,
        help="500 messages/s to a no-op push endpoint first, as the other benches do (0: none)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    reason = pubsub_unavailable() or firestore_unavailable()
    if reason:
        log.error(f"cannot run: {reason}")
        return 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = setup.WORKDIR / "ride-store" / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args), "machine": machine(),
        "load_before": load(), "compare": [],
    }  # fmt: skip
    bench = RideStoreBench(args, workdir)
    try:
        bench.start()
        if "compare" in args.only:
            for store in ["memory", "firestore"] * args.pairs:
                report["compare"].append(bench.run(store, 2, args.rate))
        if "fanout" in args.only:
            row = bench.run("firestore", args.fanout_backends, args.fanout_rate, fanout=True)
            report["fanout"] = row | {"figures": fanout_figures(row)}
    finally:
        bench.stop()
        report["load_after"] = load()
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"ride-store-{stamp}.json"
        out.write_text(json.dumps(report, indent=1, default=str))
        log.info(f"wrote {out}")
    print_summary(report)
    return 0


def print_summary(report: dict[str, Any]) -> None:
    for row in report["compare"]:
        log.info(describe(row))
    fanout = report.get("fanout")
    if fanout:
        log.info(describe(fanout))
        log.info(json.dumps(fanout["figures"], indent=1))
        log.info(json.dumps(fanout["filters"], indent=1))
    log.info(f"load average before {report['load_before']}, after {report['load_after']}")


if __name__ == "__main__":
    sys.exit(main())
