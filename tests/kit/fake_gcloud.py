"""A gcloud stand-in for running the deploy scripts for real: it records calls and answers."""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.kit.deploy_scripts import base_env

# Records argv (with stdin for --data-file=-, and the file each flag that reads one names);
# answers with the first rule whose argv prefix matches and whose use limit, counted over earlier
# calls, is not reached.
_SCRIPT = """\
import json, os, sys
FILE_FLAGS = ("--policy", "--lifecycle-file", "--config-from-file", "--policy-from-file")
args = sys.argv[1:]
log_path = os.environ["FAKE_GCLOUD_LOG"]
earlier = []
if os.path.exists(log_path):
    with open(log_path) as log:
        earlier = [json.loads(line)["argv"] for line in log]
call = {"argv": args}
if "--data-file=-" in args:
    call["stdin"] = sys.stdin.read()
for arg in args:
    name, _, path = arg.partition("=")
    if name in FILE_FLAGS and os.path.exists(path):
        with open(path) as file:
            call.setdefault("files", {})[name] = file.read()
with open(log_path, "a") as log:
    log.write(json.dumps(call) + "\\n")
with open(os.environ["FAKE_GCLOUD_ANSWERS"]) as answers:
    for prefix, stdout, code, uses in json.load(answers):
        used = sum(argv[: len(prefix)] == prefix for argv in earlier)
        if args[: len(prefix)] == prefix and (uses is None or used < uses):
            sys.stdout.write(stdout)
            sys.exit(code)
"""

Rule = tuple[list[str], str, int] | tuple[list[str], str, int, int | None]


@dataclass(frozen=True)
class FakeGcloud:
    folder: Path

    @classmethod
    def install(cls, folder: Path) -> "FakeGcloud":
        (folder / "bin").mkdir(parents=True)
        script = folder / "bin" / "gcloud"
        # -S: no site packages to import, so each call starts in milliseconds.
        script.write_text(f"#!{sys.executable} -S\n{_SCRIPT}")
        script.chmod(0o755)
        fake = cls(folder)
        fake.answer([])
        return fake

    def answer(self, rules: list[Rule]) -> None:
        """Set the answers: (argv prefix, stdout, exit code[, uses]); others exit 0 silently."""
        full = [(*rule, None) if len(rule) == 3 else rule for rule in rules]
        (self.folder / "answers.json").write_text(json.dumps(full))

    def env(self, **extra: str) -> dict[str, str]:
        """An environment whose PATH finds this gcloud first."""
        env = base_env(**extra)
        return env | {
            "PATH": f"{self.folder / 'bin'}:{env['PATH']}",
            "FAKE_GCLOUD_LOG": str(self.folder / "calls.jsonl"),
            "FAKE_GCLOUD_ANSWERS": str(self.folder / "answers.json"),
        }

    def calls(self) -> list[dict[str, object]]:
        log = self.folder / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]
