"""Print the revision that serves the riders, from `gcloud run services describe --format=json`.

deploy/ship_model.sh tags it `previous` before it deploys a candidate, so that rollback returns
to it. Serving means holding rider traffic: the revision whose entries in status.traffic add up
to a share above 0 (an entry holding only a tag has none). When two or more revisions hold a
share, a canary is under way and no single revision is production: this refuses, saying which
hold what, rather than guess (promote or roll back the canary first).
  gcloud run services describe SERVICE --format=json | python deploy/serving_revision.py
"""

import json
import sys
from typing import Any


class NoServingRevision(ValueError):
    """Not exactly one revision holds the riders' traffic; the message says who holds what."""


def serving_revision(service: dict[str, Any]) -> str:
    shares: dict[str, int] = {}
    for entry in (service.get("status") or {}).get("traffic") or []:
        name = entry.get("revisionName")
        if name and entry.get("percent"):
            shares[name] = shares.get(name, 0) + int(entry["percent"])
    if len(shares) == 1:
        return next(iter(shares))
    if not shares:
        raise NoServingRevision("no revision holds traffic: deploy the service first")
    split = ", ".join(f"{name} {percent}%" for name, percent in sorted(shares.items()))
    raise NoServingRevision(
        f"traffic is split ({split}): a canary is under way; promote or roll it back first"
    )


def main() -> int:
    try:
        sys.stdout.write(serving_revision(json.load(sys.stdin)) + "\n")
    except (NoServingRevision, json.JSONDecodeError) as err:
        sys.stderr.write(f"{err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
