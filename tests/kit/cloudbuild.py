"""Read cloudbuild.yaml and expand its substitutions the way Cloud Build does."""

import re
from pathlib import Path
from typing import Any

import yaml

from tests.kit.deploy_scripts import ROOT

CONFIG = ROOT / "cloudbuild.yaml"
# https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values
BUILTINS = {
    "PROJECT_ID",
    "BUILD_ID",
    "PROJECT_NUMBER",
    "LOCATION",
    "TRIGGER_NAME",
    "COMMIT_SHA",
    "REVISION_ID",
    "SHORT_SHA",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "TRIGGER_BUILD_CONFIG_PATH",
    "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
}
# "$$" is a literal dollar; "$NAME" and "${NAME}" are substitutions, and "${NAME:-word}" is the
# one bash-style expansion this template uses (options.dynamicSubstitutions): NAME's value, or
# word expanded when that is empty. Cloud Build's own evaluator treats an unset name as empty:
# GoogleCloudPlatform/cloud-build-local subst/bash_utils.go.
_DOLLAR = re.compile(r"\$(?:\$|\{(\w+)(:-)?|(\w+))")


def _expand(text: str, values: dict[str, str], start: int, nested: bool) -> tuple[str, int]:
    """Expand `text` from `start` to its end, or to the '}' closing a default when `nested`."""
    out: list[str] = []
    i = start
    while i < len(text) and not (nested and text[i] == "}"):
        match = _DOLLAR.match(text, i)
        if match is None:
            out.append(text[i])
            i += 1
        elif match[0] == "$$":
            out.append("$")
            i = match.end()
        elif match[3]:
            out.append(values.get(match[3], ""))
            i = match.end()
        else:
            value = values.get(match[1], "")
            i = match.end()
            if match[2]:
                default, i = _expand(text, values, i, nested=True)
                value = value or default
            if i >= len(text) or text[i] != "}":
                raise ValueError(f"unsupported expansion in {text!r}")
            out.append(value)
            i += 1
    return "".join(out), i


def load(path: Path = CONFIG) -> dict[str, Any]:
    with path.open() as stream:
        return dict(yaml.safe_load(stream))


def strings(node: Any) -> list[str]:
    """Every string in a YAML tree."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def references(text: str) -> set[str]:
    """The substitution names `text` refers to, defaults included (not escaped dollars)."""
    return {m[1] or m[3] for m in _DOLLAR.finditer(text.replace("$$", "")) if m[1] or m[3]}


def substitute(text: str, values: dict[str, str]) -> str:
    """Expand `text` as Cloud Build would with `values`; unknown names become empty."""
    return _expand(text, values, 0, nested=False)[0]


def values(config: dict[str, Any], **builtins: str) -> dict[str, str]:
    """Built-ins plus the defaults, expanded against them (options.dynamicSubstitutions)."""
    result = dict(builtins)
    for key, default in config["substitutions"].items():
        result[key] = substitute(str(default), result)
    return result


def step(config: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in config["steps"] if s.get("id") == step_id)


def default_values(**overrides: str) -> dict[str, str]:
    """Substitution values of a triggered build of commit 0123abcd in demo-project."""
    return values(load(), PROJECT_ID="demo-project", COMMIT_SHA="0123abcd") | overrides


def backend_deploy_args(**overrides: str) -> list[str]:
    """The gcloud arguments of the deploy-backend step, expanded."""
    expanded = default_values(**overrides)
    return [substitute(arg, expanded) for arg in step(load(), "deploy-backend")["args"]]


def predictor_step_env(**overrides: str) -> dict[str, str]:
    """The deploy-predictor step's environment, expanded."""
    expanded = default_values(**overrides)
    entries = step(load(), "deploy-predictor")["env"]
    return dict(substitute(entry, expanded).split("=", 1) for entry in entries)


# What deploy/pin_model.sh writes for the default _MODEL_URI when the registry keeps its artifacts
# on S3 (tests/deploy/test_model_pin.py runs the pin itself against a registry).
PINNED_MODEL = {
    "MODEL_URI": "s3://mlflow-artifacts/mlflow/1/models/m-3/artifacts",
    "MODEL_VERSION": "ride-duration/3",
}


def predictor_deploy_args(folder: Path, **pin: str) -> list[str]:
    """The deploy-predictor step's arguments to its script, with the file the pin-model step
    writes (PINNED_MODEL, or `pin`) in `folder` instead of the build's workspace."""
    args = step(load(), "deploy-predictor")["args"]
    pin_arg = next(a for a in args if a.startswith("--model-pin="))
    path = folder / pin_arg.split("=", 1)[1]
    path.write_text("".join(f"{name}={value}\n" for name, value in (pin or PINNED_MODEL).items()))
    return [f"--model-pin={path}" if a == pin_arg else a for a in args[1:]]


# An image reference with a tag, by the grammar of distribution/reference (reference.go):
# [domain[:port]/]path-component[/path-component...]:tag, every path component lower case.
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
TAGGED_REFERENCE = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*:[\w][\w.-]{{0,127}}")


def image_references(config: dict[str, Any], values: dict[str, str]) -> list[str]:
    """Every image the build names, expanded: images:, --tag=, --image=, docker push, IMAGE=."""
    found = list(config["images"])
    for build_step in config["steps"]:
        args = build_step.get("args", [])
        found += [a.split("=", 1)[1] for a in args if a.startswith(("--tag=", "--image="))]
        if args[:1] == ["push"]:
            found.append(args[1])
        found += [e.split("=", 1)[1] for e in build_step.get("env", []) if e.startswith("IMAGE=")]
    return [substitute(reference, values) for reference in found]
