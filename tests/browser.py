"""Debian's chromium driven by Playwright (no browser download), for the console's browser
tests: tests/e2e/test_browser.py beside real calls, tests/db/test_console_a11y.py alone."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is missing: scripts/bootstrap installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: the tests run as root here, where chromium's sandbox refuses to start.
        instance = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield instance
        finally:
            instance.close()


def log_in(browser: Any, url: str, name: str, password: str, **context: object) -> Any:
    """A new browser context's page, logged in to the console at `url` as `name`."""
    page = browser.new_context(**context).new_page()
    page.goto(f"{url}/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda u: not u.endswith("/login"))
    return page
