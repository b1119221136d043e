"""Fixtures of the end-to-end tests: those of the upstream HTTP client, and an outage of the
accounts' database (used by the accounts' and the videos' tests)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import pytest

from fal_openai_proxy.fal import http

from ..support.postgres import PostgresServer


@pytest.fixture
def connections_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    original = http.connection.Connection.__init__

    def counting(self: http.connection.Connection, origin: tuple[str, str, int]) -> None:
        made.append(1)
        original(self, origin)

    monkeypatch.setattr(http.connection.Connection, "__init__", counting)
    return made


@pytest.fixture
def store_outage(
    database_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[bool], None]]:
    """`outage(True)` takes the database away (Postgres: the server stops; SQLite: another
    process holds the write lock), `outage(False)` brings it back."""
    lock: list[sqlite3.Connection] = []
    server: PostgresServer | None = None
    if database_url.startswith("postgresql"):
        server = request.getfixturevalue("postgres")

    def outage(down: bool) -> None:
        if server is not None:
            server.stop() if down else server.start()
        elif down:
            connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=10)
            connection.execute("BEGIN EXCLUSIVE")
            lock.append(connection)
        else:
            lock.pop().rollback()

    yield outage
    if server is not None and not server.running:
        server.start()
    for connection in lock:
        connection.rollback()
