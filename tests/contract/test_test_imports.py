"""Every test module stands alone: helpers live in tests/kit or in fixtures, not in test modules."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _imported_test_modules(path: Path) -> list[str]:
    """Return what `path` imports from tests/ other than tests.kit, relative imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found.append("." * node.level + (node.module or ""))
            elif node.module and node.module.startswith("tests") and not _is_kit(node.module):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [
                a.name for a in node.names if a.name.startswith("tests") and not _is_kit(a.name)
            ]
    return found


def _is_kit(module: str) -> bool:
    return module == "tests.kit" or module.startswith("tests.kit.")


def test_no_test_module_or_conftest_is_imported() -> None:
    offenders = {
        str(path.relative_to(TESTS)): imports
        for path in sorted(TESTS.rglob("*.py"))
        if (imports := _imported_test_modules(path))
    }
    assert offenders == {}, f"import from tests/kit or use a fixture instead: {offenders}"


def test_the_check_sees_relative_and_conftest_imports(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "from .conftest import free_port\nfrom tests.conftest import X\n"
        "import tests.deploy.scripts\nfrom tests.kit import cloudbuild\n"
    )
    assert _imported_test_modules(sample) == [".conftest", "tests.conftest", "tests.deploy.scripts"]
