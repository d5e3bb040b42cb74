"""Benchmarks and drills share the lab (devstack), never each other; the lab imports neither."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Which top-level packages each tooling package must not import, strings and comments aside.
FORBIDDEN = {"bench": {"faults"}, "faults": {"bench"}, "devstack": {"bench", "faults"}}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, at any depth of the module (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
    return found


def test_bench_faults_and_the_lab_do_not_import_each_other() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(bad)
        for package, forbidden in FORBIDDEN.items()
        for path in sorted((ROOT / package).rglob("*.py"))
        if (bad := imported_packages(path) & forbidden)
    }
    assert offenders == {}, f"import the shared part from devstack instead: {offenders}"


def test_the_check_sees_lazy_and_plain_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import faults.lab\n\ndef f():\n    from bench import loadgen\n\nfrom .x import y\n"
    )
    assert imported_packages(sample) == {"faults", "bench"}
