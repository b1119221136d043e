"""The browser tests' chromium: a skip saying how to install it where it is absent, and a
failure instead under CI=1 (CI installs it, so a missing one there is a broken build)."""

from __future__ import annotations

import pytest

from ..support import browser


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "CHROMIUM_PATHS", ())
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)


@pytest.mark.usefixtures("no_chromium")
def test_a_missing_chromium_skips_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        browser.require_chromium()


@pytest.mark.usefixtures("no_chromium")
def test_a_missing_chromium_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        browser.require_chromium()
