"""Fixtures of the end-to-end tests: those of the upstream HTTP client."""

from __future__ import annotations

import pytest

from fal_openai_proxy.fal import http


@pytest.fixture
def connections_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    original = http.connection.Connection.__init__

    def counting(self: http.connection.Connection, origin: tuple[str, str, int]) -> None:
        made.append(1)
        original(self, origin)

    monkeypatch.setattr(http.connection.Connection, "__init__", counting)
    return made
