"""Scenarios that disturb the stream itself: slow pushes, a lost emulator, hostile messages."""

import json
import logging
import os
import subprocess
import sys
import time

import requests

from devstack.lab import Lab, kill, restart
from devstack.load import EstimateProbe, Rider, run_load
from devstack.processes import wait_until
from devstack.pubsub import emulator_clients
from devstack.stack import ROOT, Stack

from . import poison
from .observe import features, reply_to, tap, urls
from .report import ScenarioResult
from .slow_predictor import slow_stack

log = logging.getLogger("faults")
PUBLISH_TIMEOUT_S = 3.0  # the backend's default: how long /rides waits before its 503
UNAVAILABLE_BOUND_S = 2 * PUBLISH_TIMEOUT_S + 2


def predictor_slow(lab: Lab) -> ScenarioResult:
    """Make a prediction outlast the 10 s ack deadline now and then: one answer per ride."""
    result = ScenarioResult("predictor slow past the ack deadline (12 s every 15 s)")
    stack = slow_stack(lab, "predictor-slow", slow_s=12, interval_s=15)
    with tap(stack) as results:
        load = run_load(Rider(urls(stack)), lab.rides("ps", 40), rate_per_s=2, deadline_s=60)
        outcomes = load.wait()
        time.sleep(3.0)  # the slow originals finish after their redeliveries: let them land
    result.count(outcomes, results.duplicates)
    result.checks["redeliveries happened"] = result.stream_duplicates > 0
    return result


def emulator_restarted(lab: Lab) -> ScenarioResult:
    """Stop the emulator under load, bring it back empty: 503 fast while down, then recover."""
    result = ScenarioResult("emulator stopped 6 s under load, restarted empty")
    emulator = lab.own_emulator()
    stack = lab.stack("emulator-restart", emulator=emulator)
    url = stack.backends[0].url
    rides = lab.rides("er", 64)
    estimates = EstimateProbe(url, features(rides[0].body))
    load = run_load(Rider([url]), rides, rate_per_s=4, deadline_s=90)
    time.sleep(3.0)
    down_at = time.monotonic()
    emulator.stop()
    time.sleep(6.0)
    emulator.start()
    # Pub/Sub keeps topics and subscriptions through an outage; the emulator forgets them.
    stack.provision()
    up_at = time.monotonic()
    recovered_s = _first_final_after(url, lab, up_at)
    outcomes = load.wait()
    samples = estimates.stop()
    result.count(outcomes)
    down = [a for o in outcomes for a in o.attempts if a.status == 503]
    statuses = {a.status for o in outcomes for a in o.attempts}
    result.checks["/estimate answered 200 throughout"] = all(s == 200 for _, s, _ in samples)
    result.checks["/rides answered 503 while down"] = bool(down)
    # The bound is the behaviour: PUBLISH_TIMEOUT_S and a wait for a free thread, not the
    # client library's 60 s of retries.
    result.checks[f"503 within {UNAVAILABLE_BOUND_S:g} s"] = all(
        a.seconds < UNAVAILABLE_BOUND_S for a in down
    )
    log_text = stack.backends[0].process.log_path.read_text()
    result.checks["listener resubscribed"] = "resubscribing" in log_text
    result.checks["no other error status"] = statuses <= {200, 202, 503}
    result.checks["recovered by itself"] = recovered_s is not None
    result.notes += [
        f"{len(samples)} estimates, worst {max((t for *_, t in samples), default=0):.2f} s",
        f"{len(down)} answers 503, worst {max((a.seconds for a in down), default=0):.1f} s",
        f"down {up_at - down_at:.0f} s; a new ride got its final duration "
        + (f"{recovered_s:.1f} s after the emulator was back" if recovered_s else "never"),
        f"{sum(len(o.attempts) > 1 for o in outcomes)} rides confirmed more than once",
    ]
    return result


def _first_final_after(url: str, lab: Lab, since: float, budget_s: float = 40) -> float | None:
    """Confirm fresh rides until one gets its final duration; return when, after `since`."""
    for ride in lab.rides("probe", int(budget_s)):
        if time.monotonic() - since > budget_s:
            return None
        try:
            response = requests.post(f"{url}/rides", json=ride.body, timeout=15)
        except requests.RequestException:
            response = None
        if response is not None and response.status_code == 200:
            return time.monotonic() - since
        time.sleep(1.0)
    return None


def poison_and_duplicates(lab: Lab) -> ScenarioResult:
    """Publish garbage and duplicates straight to the rides topic while good rides flow."""
    result = ScenarioResult("poison and duplicate messages on the rides topic")
    stack = lab.stack("poison")
    url = stack.backends[0].url
    replies = reply_to(stack.backends[0])
    s = stack.settings
    with tap(stack) as results:
        load = run_load(Rider([url]), lab.rides("good", 60), rate_per_s=10, deadline_s=60)
        messages = poison.messages(replies)
        with emulator_clients(stack.address) as (publisher, _):
            topic = f"projects/{s.project}/topics/{s.rides_topic}"
            for data, attributes in messages:
                publisher.publish(topic, data, **attributes).result(timeout=30)
        outcomes = load.wait()
        # Publish a few answered rides again, as a redelivery would; the answers must not move.
        replayed = outcomes[:5]
        with emulator_clients(stack.address) as (publisher, _):
            for out in replayed:
                ride = {"ride_id": out.ride.ride_id, "features": features(out.ride.body)}
                attributes = {"ride_id": out.ride.ride_id, "reply_to": replies}
                again = json.dumps(ride).encode()
                publisher.publish(topic, again, **attributes).result(timeout=30)
        wait_until(
            lambda: all(results.counts[o.ride.ride_id] >= 2 for o in replayed), 30, what="replays"
        )
    letters = poison.dead_letters(stack, want=len(messages))
    result.count(outcomes, results.duplicates)
    reasons = sorted(letter.reason for letter in letters)
    good_latency = sorted(o.latency_s or 0 for o in outcomes)
    result.checks["every poison message dead-lettered by the predictor"] = reasons == sorted(
        poison.EXPECTED_REASONS
    )
    result.checks["predictor stayed up"] = stack.predictor.process.alive() and (
        requests.get(f"{stack.predictor.url}/readyz", timeout=10).status_code == 200
    )
    result.checks["good rides kept flowing (worst under 5 s)"] = good_latency[-1] < 5.0
    result.notes += [
        f"{len(letters)} dead letters: " + ", ".join(sorted(set(reasons))),
        f"good rides median {good_latency[len(good_latency) // 2]:.2f} s",
        f"{len(replayed)} answered rides published again",
    ]
    return result


def dead_letters_replayed(lab: Lab) -> ScenarioResult:
    """Keep the predictor down until Pub/Sub gives up, then replay with `python -m deadletters`."""
    result = ScenarioResult("predictor down until dead-lettered, replayed with the tool")
    stack = lab.stack("dead-letters")
    kill(stack.predictor)
    rides = lab.rides("dl", 8)
    # No re-confirming: only the replay may bring these rides their results.
    load = run_load(Rider(urls(stack), repost_after_s=120), rides, rate_per_s=8, deadline_s=70)
    letters = poison.dead_letters(stack, want=len(rides), budget_s=40)
    log.info("%d dead letters after %.1f s", len(letters), time.monotonic() - load.started)
    restart(stack.predictor)
    listed = _tool(stack, "list", "--json")
    replayed = _tool(stack, "replay", "--all")
    log.info("replayed %d after %.1f s", len(replayed), time.monotonic() - load.started)
    outcomes = load.wait()
    left = poison.dead_letters(stack, want=0, budget_s=3)
    result.count(outcomes, ask=False)
    result.checks["every ride dead-lettered by Pub/Sub"] = len(letters) == len(rides)
    result.checks["the tool listed them with their reason"] = len(listed) == len(rides) and all(
        json.loads(line)["reason"].startswith("delivery-attempts-exhausted") for line in listed
    )
    result.checks["the tool replayed them"] = len(replayed) == len(rides)
    result.checks["dead-letter subscription empty after"] = not left
    result.notes.append(f"{len(letters)} dead-lettered after 5 failed pushes, all replayed")
    return result


def _tool(stack: Stack, *args: str) -> list[str]:
    """Run `python -m deadletters` on the stack's emulator and topics; its output lines."""
    s = stack.settings
    env = os.environ | {
        "PUBSUB_EMULATOR_HOST": stack.address, "PROJECT_ID": s.project, "PYTHONPATH": str(ROOT),
        "DEAD_LETTER_SUBSCRIPTION": s.dead_letter_subscription, "RIDES_TOPIC": s.rides_topic,
    }  # fmt: skip
    argv = [sys.executable, "-m", "deadletters", *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()
