"""Run the deploy scripts and read the plans they print."""

import os
import random
import re
import shlex
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "deploy" / "setup.sh"
ROLLOUT = ROOT / "deploy" / "rollout_predictor.sh"
TEARDOWN = ROOT / "deploy" / "teardown.sh"
SHIP_MODEL = ROOT / "deploy" / "ship_model.sh"
SHIP_STEPS = ("candidate", "shadow", "compare", "canary", "promote", "rollback")


@dataclass(frozen=True)
class Plan:
    commands: list[list[str]]  # what would change something, in order
    checks: list[list[str]]  # read-only probes, printed as "# check: ..." comments
    text: str


def run_script(script: Path, *args: str, env: dict[str, str], timeout_s: float = 120):
    """Run a deploy script with exactly `env`; return the finished process (text output)."""
    return subprocess.run(
        ["bash", str(script), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def dry_run(script: Path, *args: str, env: dict[str, str]) -> Plan:
    """Run `script --dry-run` and parse the commands it prints."""
    done = run_script(script, "--dry-run", *args, env=env)
    assert done.returncode == 0, done.stderr
    return parse_plan(done.stdout + done.stderr)


def parse_plan(text: str) -> Plan:
    commands, checks = [], []
    for line in text.splitlines():
        if line.startswith("# check: gcloud "):
            checks.append(shlex.split(line.removeprefix("# check: ")))
        elif line.startswith("gcloud "):
            commands.append(shlex.split(line, comments=True))
    return Plan(commands, checks, text)


def command(plan: Plan, *prefix: str) -> list[str]:
    """The first command of `plan` that starts with the words `prefix`."""
    return next(c for c in plan.commands if c[: len(prefix)] == list(prefix))


def flag(argv: list[str], name: str) -> str:
    """The value of `--name=value` in `argv`."""
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


def env_vars(deploy: list[str]) -> dict[str, str]:
    """The `--set-env-vars` of a `gcloud run deploy` command, as a dict."""
    # The script joins them with '|' behind gcloud's '^|^' escape, so values may hold commas.
    joined = flag(deploy, "set-env-vars").removeprefix("^|^")
    return dict(item.split("=", 1) for item in joined.split("|"))


def base_env(**extra: str) -> dict[str, str]:
    """The caller's PATH and HOME only, plus `extra`: no stray project or credentials."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")} | extra


def config_defaults(**env: str) -> dict[str, str]:
    """Every variable deploy/config.sh sets, as it sets it in `env`."""
    text = (ROOT / "deploy" / "config.sh").read_text()
    names = re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)
    script = "source deploy/config.sh; " + "; ".join(f'printf "%s\\n" "${n}"' for n in names)
    done = subprocess.run(
        ["bash", "-c", script],
        env=base_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(zip(names, done.stdout.splitlines(), strict=True))


# Ports this suite may bind, kept apart from the stack's (8080, 8081, 8085 and random ones).
PORTS = range(8185, 8200)


def free_port() -> int:
    """Return a loopback port from PORTS that nothing is bound to."""
    # Random order: parallel test workers seldom try the same port at the same moment.
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def offline_env(config_dir: Path, **extra: str) -> dict[str, str]:
    """Return an environment where gcloud has no account, no project and no metadata server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOUDSDK_", "GOOGLE_", "PUBSUB_EMULATOR"))
    }
    ca_bundle = os.environ.get("CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE")
    env |= {
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_CORE_DISABLE_FILE_LOGGING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }
    if ca_bundle:
        env["CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE"] = ca_bundle
    return env | extra


def emulator_pubsub_names_and_env(address: str, project: str, config_dir: Path):
    """Names of a test's own for every topic and subscription setup makes, and the environment
    that points the deploy scripts' gcloud at the Pub/Sub emulator with them."""
    suffix = uuid.uuid4().hex[:6]
    names = {
        "RIDES_TOPIC": f"rides-{suffix}",
        "RESULTS_TOPIC": f"results-{suffix}",
        "DEAD_LETTER_TOPIC": f"dead-letters-{suffix}",
        "PUSH_SUBSCRIPTION": f"rides-push-{suffix}",
        "DEAD_LETTER_SUBSCRIPTION": f"dead-letters-sub-{suffix}",
        "RECORDER_SUBSCRIPTION": f"results-recorder-{suffix}",
    }
    env = offline_env(
        config_dir,
        CLOUDSDK_AUTH_DISABLE_CREDENTIALS="true",
        CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=f"http://{address}/",
        CLOUDSDK_CORE_PROJECT=project,
        # The emulator caps retention at 7 days; Pub/Sub allows the default's 31.
        DEAD_LETTER_RETENTION_S=str(6 * 86400),
        **names,
    )
    return names, env
