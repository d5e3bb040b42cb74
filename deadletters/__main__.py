"""`python -m deadletters list|replay`: inspect the dead-letter subscription and replay from it."""

import argparse
import json
import os
import sys

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from . import fetch, release, replay, subscriber_client


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
        default=env("BACKEND_PUSH_STREAM", "ride-data-push"),
        help="rides topic to replay to (default: $BACKEND_PUSH_STREAM or %(default)s)",
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
        letters = fetch(subscriber, subscription, args.limit)
        if args.command == "list":
            release(subscriber, subscription, letters)
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
        release(subscriber, subscription, [x for x in letters if x not in chosen])
        publisher = pubsub_v1.PublisherClient()
        try:
            replayed = replay(publisher, subscriber, subscription, topic, chosen)
        finally:
            publisher.stop()
        for old, new in replayed.items():
            sys.stdout.write(f"replayed {old} as {new}\n")
        sys.stderr.write(f"{len(replayed)} dead letter(s) replayed to {topic}\n")
        return 0
    finally:
        subscriber.close()


if __name__ == "__main__":
    sys.exit(main())
