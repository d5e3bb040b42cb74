"""Module names that cannot shadow the standard library, in any folder run as a script's."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["backend_service", "predictor_service", "ride_stream", "training"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_named_like_the_standard_library(package):
    # predictor_service/fetch.py runs by path, so its folder comes first on the child's sys.path:
    # a module there named like the standard library's would be imported in its place.
    names = {path.stem for path in (ROOT / package).glob("*.py")} - {"__init__", "__main__"}

    assert sorted(names & sys.stdlib_module_names) == []
