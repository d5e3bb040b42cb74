"""`python -m deadletters list|replay`: inspect the dead-letter subscription and replay from it."""

import argparse
import json
import os
import sys

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from . import DeadLetter, Leases, fetch, release, replay, subscriber_client, sweep


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m deadletters", description=__doc__)
    parser.add_argument("--project", default=env("PROJECT_ID"), help="default: $PROJECT_ID")
    parser.add_argument(
        "--subscription",
        default=env("DEAD_LETTER_SUBSCRIPTION", "ride-data-dead-letter-sub"),
        help="dead-letter subscription (default: $DEAD_LETTER_SUBSCRIPTION or %(default)s)",
    )
    parser.add_argument(
        "--topic",
        default=env("RIDES_TOPIC", env("BACKEND_PUSH_STREAM", "ride-data-push")),
        help="rides topic to replay to (default: $RIDES_TOPIC or %(default)s)",
    )
    parser.add_argument("--limit", type=int, default=1000, help="most dead letters to read")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show each dead letter with its reason")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    again = commands.add_parser("replay", help="publish selected dead letters to the rides topic")
    pick = again.add_mutually_exclusive_group(required=True)
    pick.add_argument("--id", action="append", dest="ids", help="dead letter message id")
    pick.add_argument("--ride-id", action="append", dest="ride_ids", help="ride_id attribute")
    pick.add_argument("--reason", help="every dead letter with this reason")
    pick.add_argument("--all", action="store_true", help="every replayable dead letter")
    args = parser.parse_args(argv)
    if not args.project:
        parser.error("set PROJECT_ID or pass --project")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    subscription = f"projects/{args.project}/subscriptions/{args.subscription}"
    topic = f"projects/{args.project}/topics/{args.topic}"
    subscriber = subscriber_client()
    try:
        with Leases(subscriber, subscription) as leases:
            return run(args, subscriber, subscription, topic, leases)
    finally:
        subscriber.close()


def run(
    args: argparse.Namespace, subscriber: object, subscription: str, topic: str, leases: Leases
) -> int:
    """List or replay, holding what was pulled leased until it is acked or handed back."""
    letters = fetch(subscriber, subscription, args.limit, leases)
    if args.command == "list":
        release(subscriber, subscription, letters)
        leases.drop(letters)
        for letter in letters:
            row = letter.as_json()
            if args.json:
                sys.stdout.write(json.dumps(row) + "\n")
            else:
                sys.stdout.write(
                    f"{row['message_id']}\t{row['published']}\t{row['reason']}\t"
                    f"ride_id={row['ride_id']}\t{row['bytes']} B\t{row['error'][:100]}\n"
                )
        sys.stderr.write(f"{len(letters)} dead letter(s) in {subscription}\n")
        return 0
    chosen = [
        letter
        for letter in letters
        if (args.all and letter.replayable)
        or (args.ids and letter.message_id in args.ids)
        or (args.ride_ids and letter.attributes.get("ride_id") in args.ride_ids)
        or (args.reason and letter.reason == args.reason)
    ]
    for letter in chosen:
        if not letter.replayable:
            sys.stderr.write(f"skipping {letter.message_id}: truncated, not replayable\n")
    chosen = [letter for letter in chosen if letter.replayable]
    others = [x for x in letters if x not in chosen]
    release(subscriber, subscription, others)
    leases.drop(others)
    publisher = pubsub_v1.PublisherClient()
    replayed: dict[str, str] = {}  # this run's, by message id: none is published twice
    unacked: list[DeadLetter] = []
    try:
        replay(publisher, subscriber, subscription, topic, chosen, replayed, leases, unacked)
    finally:
        publisher.stop()
        for old, new in replayed.items():
            sys.stdout.write(f"replayed {old} as {new}\n")
    # A letter published whose ack failed comes back: ack it then, without publishing it again.
    again = sweep(subscriber, subscription, replayed) if unacked else 0
    sys.stderr.write(f"{len(replayed)} dead letter(s) replayed to {topic}\n")
    if again:
        sys.stderr.write(f"{again} replayed letter(s) came back and were acked, not replayed\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
