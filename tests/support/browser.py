"""Debian's chromium driven by Playwright for Python, for the console's browser tests and
`make screenshots`.

Playwright's own browser download cannot run here, so it is never used (no `playwright
install`): Playwright starts the system's chromium by its path. Without chromium the tests
skip saying how to install it, and fail under CI=1 (`.ci/run` installs Debian's `chromium`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str | None:
    for path in CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


def require_chromium() -> str:
    """chromium's path; a skip without it (or without Playwright), a failure under CI."""
    message = ""
    try:
        import playwright  # noqa: F401
    except ImportError:
        message = "Playwright for Python is not installed (pip install -e '.[dev]')"
    path = chromium_path()
    if path is None:
        message = "chromium is not installed (apt-get install chromium; CI does)"
    if message:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert path is not None
    return path


@contextmanager
def chromium(path: str) -> Iterator[Browser]:
    """A running chromium (a playwright Browser), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageProblems:
    """What went wrong on a page: console errors and warnings, uncaught exceptions, failed
    requests and answers of 400 or more."""

    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> PageProblems:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.exceptions.append(str(error)))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        return self

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text}")

    def _failed(self, request: Request) -> None:
        # A fetch the page itself aborted (the playground's Stop) is not a failure.
        failure = request.failure or ""
        if "ERR_ABORTED" not in failure:
            self.failed.append(f"{request.url}: {failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.statuses.append(f"{response.status} {response.url}")

    def all(self) -> list[str]:
        return self.console + self.exceptions + self.failed + self.statuses

    def clear(self) -> None:
        for problems in (self.console, self.exceptions, self.failed, self.statuses):
            problems.clear()
