"""The deploy scripts use nothing that macOS's bash 3.2 lacks.

No bash 3.2 runs here (Debian ships none), so this reads the scripts: it fails on any construct
added after 3.2, and on any expansion of an array that may be empty, which bash before 4.4 calls
unbound under `set -u` (that stopped setup on a Mac before Firestore, secrets and IAM).
shellcheck (test_scripts.py) checks the rest.
"""

import re
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import ROOT

SCRIPTS = sorted((ROOT / "deploy").glob("*.sh"))

# (pattern, what it is and the bash release that brought it)
NEWER_THAN_32 = [
    (r"\b(?:declare|local|typeset)\s+-[a-zA-Z]*A", "associative array (4.0)"),
    (r"\b(?:declare|local|typeset)\s+-[a-zA-Z]*[nglu]\b", "declare -n/-g/-l/-u (4.0-4.3)"),
    (r"\b(?:mapfile|readarray)\b", "mapfile/readarray (4.0)"),
    (r"\$\{[#!]?\w+(?:\[[^]]*\])?(?:,,?|\^\^?)[^}]*\}", "case modification ${x,,} (4.0)"),
    (r"\$\{\w+(?:\[[^]]*\])?@[QEPAaKkUuL]\}", "parameter transformation ${x@Q} (4.4)"),
    (r"\$\{\w+\[-\d+\]\}", "negative array index (4.3)"),
    (r"\$\{\w+:[^:}]*:-\d", "negative substring length (4.2)"),
    (r"&>>|\|&", "&>> or |& (4.0)"),
    (r"\bcoproc\b", "coproc (4.0)"),
    (r";;&|(?<![;&]);&", "case fall-through ;& or ;;& (4.0)"),
    (r"(?:\[\[|\btest)\s+-v\b", "[[ -v name ]] (4.2)"),
    (r"\bwait\s+-n\b", "wait -n (4.3)"),
    (r"\$\{?(?:EPOCHSECONDS|EPOCHREALTIME|BASHPID|SRANDOM|BASH_ARGV0)\b", "bash 4-5 variable"),
    (r"shopt\s+-s\s+(?:globstar|lastpipe|inherit_errexit|localvar_inherit|direxpand)", "shopt 4+"),
    (r"(?<![$\w])\{[A-Za-z_]\w*\}[<>]", "named file descriptor {fd}> (4.1)"),
    (r"%\([^)]*\)T", "printf %(...)T (4.2)"),
    (r"\{-?\d+\.\.-?\d+\.\.-?\d+\}|\{0\d+\.\.", "brace sequence with step or padding (4.0)"),
    # Not bash, but missing from or different on macOS.
    (r"\bsed\s+(?:-\w+\s+)*-i\b", "sed -i (BSD sed needs a suffix argument)"),
    (r"\bdate\s+(?:-\w+\s+)*-d\b", "date -d (GNU only)"),
    (r"\breadlink\s+-f\b", "readlink -f (macOS before 12.3)"),
    (r"\bgrep\s+(?:-\w+\s+)*-\w*P", "grep -P (GNU only)"),
    (r"(?:^|[|;&(]\s*)timeout\s", "timeout (not on macOS)"),
]

_EXPANSION = re.compile(r"\$\{(\w+)\[[@*]\]([^}]*)\}")
_GUARDED = re.compile(r'\$\{(\w+)\[([@*])\]\+"\$\{\1\[\2\]\}"\}')


def code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line that is not a comment."""
    lines = enumerate(text.splitlines(), 1)
    return [(n, line) for n, line in lines if not line.lstrip().startswith("#")]


def may_be_empty(name: str, texts: list[str]) -> bool:
    """Whether any script gives the array no element: `x=()` or `read -a x`, or never sets it."""
    assigned = any(re.search(rf"\b{name}=\(\s*[^)\s]", t) for t in texts)
    emptied = any(
        re.search(rf"\b{name}=\(\s*\)", t) or re.search(rf"\bread\b[^\n]*-a\s+{name}\b", t)
        for t in texts
    )
    return emptied or not assigned


def problems(text: str, all_texts: list[str]) -> list[str]:
    found = []
    for number, line in code_lines(text):
        for pattern, what in NEWER_THAN_32:
            if re.search(pattern, line):
                found.append(f"{number}: {what}: {line.strip()}")
        unguarded = _GUARDED.sub("", line)
        for match in _EXPANSION.finditer(unguarded):
            name, rest = match[1], match[2]
            if rest == "-":  # ${a[*]-}: empty when unset, never an error
                continue
            if may_be_empty(name, all_texts):
                found.append(
                    f'{number}: "${{{name}[@]}}" of an array that may be empty: '
                    f'write ${{{name}[@]+"${{{name}[@]}}"}}: {line.strip()}'
                )
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_uses_nothing_bash_32_lacks(script: Path) -> None:
    texts = [s.read_text() for s in SCRIPTS]

    assert problems(script.read_text(), texts) == []


@pytest.mark.parametrize(
    "snippet",
    [
        'local -a retry=()\nrun gcloud x "${retry[@]}"\n',
        'IFS=, read -r -a parts <<<"$x"\nfor p in "${parts[@]}"; do :; done\n',
        'echo "${never_set[@]}"\n',
        "declare -A seen=()\n",
        'lower="${REGION,,}"\n',
        "mapfile -t lines < f\n",
        "cmd |& tee log\n",
        "[[ -v PROJECT_ID ]]\n",
        'echo "${value@Q}"\n',
        "sed -i 's/a/b/' f\n",
    ],
)
def test_the_check_catches_what_bash_32_lacks(snippet: str) -> None:
    assert problems(snippet, [snippet]) != []


@pytest.mark.parametrize(
    "snippet",
    [
        'local -a retry=()\nrun gcloud x ${retry[@]+"${retry[@]}"}\n',
        'APIS=(\n  run.googleapis.com\n)\nrun gcloud services enable "${APIS[@]}"\n',
        "problems=()\n((${#problems[@]})) && echo\n",
        'sel=()\n[[ " ${sel[*]-} " == *" a "* ]]\n',
        '# a comment may say "${retry[@]}"\n',
        'case "$x" in a) ;; esac\nprintf "%s" "${x:-default}"\n',
    ],
)
def test_the_check_passes_what_bash_32_runs(snippet: str) -> None:
    assert problems(snippet, [snippet]) == []
