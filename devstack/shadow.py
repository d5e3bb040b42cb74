"""A candidate predictor beside the stack's, shadowing its rides, as deploy/ship_model.sh does.

The candidate is a second predictor process (a tagged revision without traffic, deployed); the
shadow subscription pushes it the riders' rides, all of them or a fraction chosen by ride id,
and it answers them on the shadow results topic, which no rider reads. The emulator ignores
subscription filters (measured: a half filter let every ride through), so on `make run` a
shadow gets every ride whatever its fraction; Pub/Sub applies the filter.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import registry
from .processes import free_port
from .pubsub import _ignore_existing as ignore_existing
from .pubsub import emulator_clients
from .stack import Service, Settings, Stack

HEX = "0123456789abcdef"
# The course's baseline, as `make train-course` registers it: the candidate rehearsals default to.
COURSE_NAME, COURSE_ALIAS = "ride-duration-course", "production"
COURSE_MODEL = f"models:/{COURSE_NAME}@{COURSE_ALIAS}"


@dataclass(frozen=True)
class Shadow:
    subscription: str = "ride-data-shadow-sub"
    results_topic: str = "ride-duration-shadow"
    # Sixteenths of the rides shadowed, chosen by the first hex digit of their ride id.
    sixteenths: int = 16

    def env(self) -> dict[str, str]:
        """What a predictor needs to tell shadow pushes apart (predictor_service.shadow)."""
        return {
            "SHADOW_SUBSCRIPTION": self.subscription,
            "SHADOW_RESULTS_TOPIC": self.results_topic,
        }


def ride_filter(sixteenths: int) -> str:
    """A subscription filter letting through `sixteenths`/16 of the rides, by ride id (hex)."""
    if not 1 <= sixteenths <= 16:
        raise ValueError(f"sixteenths must be 1 to 16, got {sixteenths}")
    if sixteenths == 16:
        return ""
    return " OR ".join(f'hasPrefix(attributes.ride_id, "{digit}")' for digit in HEX[:sixteenths])


def ensure_course_model(
    settings: Settings, model_uri: str, progress: Callable[[str], None] = lambda _: None
) -> None:
    """Register the course's baseline first if `model_uri` names it and the registry lacks it."""
    if model_uri != COURSE_MODEL:
        return
    if registry.lookup(settings.tracking_uri, COURSE_NAME, COURSE_ALIAS) is not None:
        return
    progress(f"{COURSE_MODEL} is not registered yet: training the course's baseline")
    registry.train_course(
        settings.tracking_uri, settings.artifact_location, COURSE_NAME, COURSE_ALIAS
    )


def candidate_service(stack: Stack, model_uri: str, shadow: Shadow = Shadow()) -> Service:
    """Start a second predictor for `model_uri`, configured as the stack's with `shadow`."""
    # The production predictor's environment (its gunicorn adds HOST and PORT of its own), as
    # the candidate revision keeps the serving revision's settings (ship_model.sh candidate).
    env = stack.predictor.process.env | {"MODEL_URI": model_uri} | shadow.env()
    candidate = Service(
        "predictor_service", free_port(), env, stack.settings.workdir / "candidate.log"
    )
    candidate.start()
    return candidate


def start_candidate(stack: Stack, model_uri: str, shadow: Shadow = Shadow()) -> Service:
    """Start a second predictor for `model_uri` and push it the stack's rides as a shadow."""
    candidate = candidate_service(stack, model_uri, shadow)
    try:
        subscribe_shadow(stack, f"{candidate.url}/", shadow)
    except BaseException:
        candidate.stop()
        raise
    return candidate


def subscribe_shadow(stack: Stack, endpoint: str, shadow: Shadow) -> None:
    """Create the shadow results topic and the shadow push subscription to `endpoint`."""
    t = stack.settings.topology
    with emulator_clients(stack.address) as (publisher, subscriber):
        ignore_existing(
            publisher.create_topic, request={"name": t.topic_path(shadow.results_topic)}
        )
        request = {
            "name": t.subscription_path(shadow.subscription),
            "topic": t.topic_path(t.rides_topic),
            "push_config": {"push_endpoint": endpoint},
            "ack_deadline_seconds": t.ack_deadline_s,
            # No dead-letter policy: a shadow failure never enters the riders' dead letters.
            "filter": ride_filter(shadow.sixteenths),
        }
        ignore_existing(subscriber.create_subscription, request=request)


def end_shadow(stack: Stack, shadow: Shadow) -> None:
    """Delete the shadow subscription: the candidate gets no more shadow pushes."""
    t = stack.settings.topology
    with emulator_clients(stack.address) as (_, subscriber):
        subscriber.delete_subscription(
            request={"subscription": t.subscription_path(shadow.subscription)}, timeout=10
        )


def main(argv: list[str] | None = None) -> int:
    """Run a candidate beside `make run`'s predictor, shadowing its rides, until interrupted."""
    import argparse
    import os
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "model_uri",
        nargs="?",
        default=COURSE_MODEL,
        help=f"models:/name/N, models:/name@alias, runs:/..., a folder (default {COURSE_MODEL})",
    )
    parser.add_argument("--sixteenths", type=int, default=16, help="of the rides (GCP only)")
    args = parser.parse_args(argv)
    stack = Stack(Settings.from_env(dict(os.environ)))  # `make run`'s settings, not started
    ensure_course_model(stack.settings, args.model_uri, print_line)
    shadow = Shadow(sixteenths=args.sixteenths)
    candidate = start_candidate(stack, args.model_uri, shadow)
    print_line(f"candidate {args.model_uri} on {candidate.url}: shadowing; Ctrl-C ends it")
    stop = {signal.SIGINT, signal.SIGTERM}
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # after the start: its children keep theirs
        signal.sigwait(stop)
    finally:
        end_shadow(stack, shadow)
        candidate.stop()
    return 0


def print_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
