"""Move the registry aliases that say which version serves: candidate, production, previous.

Run by deploy/ship_model.sh with MLFLOW_TRACKING_URI set:
  python deploy/model_alias.py pin URI            print URI with an alias resolved to its version
  python deploy/model_alias.py candidate URI      point the candidate alias at URI's version
  python deploy/model_alias.py promote NAME       production -> candidate's version, previous ->
                                                  the version production had
  python deploy/model_alias.py rollback NAME      production -> previous's version
"""

import re
import sys

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")
CANDIDATE, PRODUCTION, PREVIOUS = "candidate", "production", "previous"


def version_of(client, name: str, alias: str) -> str:  # type: ignore[no-untyped-def]
    return str(client.get_model_version_by_alias(name, alias).version)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: list[str]) -> int:
    from mlflow import MlflowClient

    command, target = argv
    client = MlflowClient()
    if command in ("pin", CANDIDATE):
        match = REGISTRY_URI.match(target)
        if match is None:
            say(target)  # runs:/ or a folder: a fixed model already, no alias to move
            return 0
        name = match["name"]
        version = match["version"] or version_of(client, name, match["alias"])
        if command == CANDIDATE:
            client.set_registered_model_alias(name, CANDIDATE, version)
        say(f"models:/{name}/{version}")
    elif command == "promote":
        serving = version_of(client, target, PRODUCTION)
        promoted = version_of(client, target, CANDIDATE)
        client.set_registered_model_alias(target, PREVIOUS, serving)
        client.set_registered_model_alias(target, PRODUCTION, promoted)
        say(f"{target}: production {serving} -> {promoted}")
    elif command == "rollback":
        back = version_of(client, target, PREVIOUS)
        client.set_registered_model_alias(target, PRODUCTION, back)
        say(f"{target}: production -> {back}")
    else:
        sys.stderr.write(__doc__ or "")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
