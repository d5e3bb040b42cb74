"""Debian's Chromium, headless, driven by Playwright; skipped, saying why, if either is absent."""

import shutil
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Launch the system's Chromium once per module (Playwright's own download is not used).

    Not once per session: Playwright's sync API keeps an event loop running in the test's thread
    while it is open, and a later test of the same worker may need to run one of its own there."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -r requirements-dev.txt)")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path)
        try:
            yield instance
        finally:
            instance.close()
