"""Read a Dockerfile's instructions, and lay out the files its COPY lines put under /app."""

import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from docker.utils.build import exclude_paths

from tests.kit.deploy_scripts import ROOT


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """Parse the instructions, joining continued lines and dropping comments."""
    result: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        result.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return result


def cmd(path: Path) -> list[str]:
    """The exec-form CMD, which must be a JSON array."""
    return list(json.loads(next(i.args for i in instructions(path) if i.keyword == "CMD")))


def env(path: Path) -> dict[str, str]:
    pairs = [p for i in instructions(path) if i.keyword == "ENV" for p in shlex.split(i.args)]
    return dict(pair.split("=", 1) for pair in pairs)


def context_files(root: Path = ROOT) -> set[str]:
    """Files of the build context under root, after .dockerignore."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {p for p in exclude_paths(str(root), patterns) if (root / p).is_file()}


def install_app(path: Path, app_dir: Path) -> None:
    """Copy what the Dockerfile's COPY lines take from the build context into `app_dir`."""
    context = context_files()
    for copy in (i for i in instructions(path) if i.keyword == "COPY"):
        source, target = shlex.split(copy.args)[-2:]
        for relative in sorted(context):
            if relative == source or relative.startswith(source.rstrip("/") + "/"):
                inside = relative.removeprefix(source.rstrip("/")).lstrip("/")
                destination = app_dir / target / inside if inside else app_dir / target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / relative, destination)
