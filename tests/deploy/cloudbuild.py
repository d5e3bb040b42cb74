"""Read cloudbuild.yaml and expand its substitutions the way Cloud Build does."""

import re
from pathlib import Path
from typing import Any

import yaml

from .scripts import ROOT

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
# "$$" is a literal dollar; "$NAME" and "${NAME}" are substitutions.
_REFERENCE = re.compile(r"\$\$|\$\{(\w+)\}|\$(\w+)")


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
    """The substitution names `text` refers to (escaped dollars are not references)."""
    return {m[1] or m[2] for m in _REFERENCE.finditer(text) if m[0] != "$$"}


def substitute(text: str, values: dict[str, str]) -> str:
    """Expand `text` as Cloud Build would with `values`; unknown names become empty."""

    def expand(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return values.get(match[1] or match[2], "")

    return _REFERENCE.sub(expand, text)


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
