"""The accounts database: one async SQLAlchemy engine (aiosqlite or asyncpg) and its migrations.

DATABASE_URL names it as operators write it (`sqlite:///./x.db`, `postgresql://…`); the driver
is ours to choose. Alembic migrates it at start and with `fal-openai-proxy db upgrade`; replicas
starting together take a lock first (Postgres: an advisory lock; SQLite: a lock file).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
# Alembic narrates every plugin and step at INFO; one line of ours says what changed.
logging.getLogger("alembic").setLevel(logging.WARNING)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
CONNECT_TIMEOUT = 5.0  # seconds to open a connection; longer means "down"
STATEMENT_TIMEOUT = 10.0  # seconds for one statement (Postgres)
# pg_advisory_xact_lock id held while migrating: an arbitrary constant of this project.
MIGRATION_LOCK = 0x0FA1_0FE1


class DatabaseUrlError(ValueError):
    """DATABASE_URL names no database this proxy can use."""


def engine_url(raw: str) -> URL:
    """DATABASE_URL -> the URL with our async driver (aiosqlite or asyncpg)."""
    try:
        url = make_url(raw)
    except Exception:  # its message may quote the URL, password included
        raise DatabaseUrlError("DATABASE_URL is not a valid URL.") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise DatabaseUrlError("DATABASE_URL must be sqlite:///path or postgresql://…")


def describe(raw: str) -> str:
    """Where the database is, for messages: never the password."""
    try:
        url = engine_url(raw)
    except DatabaseUrlError:
        return "the database"
    if url.get_backend_name() == "sqlite":
        return f"the SQLite file {url.database}" if _sqlite_file(url) else "in-memory SQLite"
    return f"Postgres at {url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def _sqlite_file(url: URL) -> bool:
    return bool(url.database) and url.database != ":memory:"


def alembic_config() -> Config:
    from alembic.config import Config  # imported when migrating only: it is slow to import

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class Database:
    """One engine for this process. Nothing here is awaited on a request's path except the
    cache misses of key lookups (`store/accounts.py`)."""

    def __init__(self, raw_url: str, *, pool_size: int = 5) -> None:
        self.url = engine_url(raw_url)
        self.where = describe(raw_url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        options: dict[str, Any] = {}
        if self.is_sqlite:
            if not _sqlite_file(self.url):
                options["poolclass"] = StaticPool  # one in-memory database, not one each
            options["connect_args"] = {"timeout": CONNECT_TIMEOUT}
        else:
            options.update(
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=CONNECT_TIMEOUT,
                pool_pre_ping=True,  # a pooled connection may have died with a restart
                connect_args={"timeout": CONNECT_TIMEOUT, "command_timeout": STATEMENT_TIMEOUT},
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            yield connection

    async def upgrade(self) -> None:
        """Migrate to the newest schema (a no-op when it is current)."""
        async with self._migration_lock(), self.engine.begin() as connection:
            if not self.is_sqlite:
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": MIGRATION_LOCK}
                )
            await connection.run_sync(_upgrade)

    async def revision(self) -> str | None:
        """The schema's current revision (None: never migrated)."""
        async with self.engine.connect() as connection:
            return await connection.run_sync(_current_revision)

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        """Processes sharing a SQLite file migrate one at a time (Postgres locks in SQL)."""
        if not (self.is_sqlite and _sqlite_file(self.url)):
            yield
            return
        path = f"{self.url.database}.migrate-lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


async def schema_revision(raw_url: str) -> str | None:
    """The revision of the database DATABASE_URL names (raises if it cannot be reached)."""
    db = Database(raw_url, pool_size=1)
    try:
        return await db.revision()
    finally:
        await db.close()


async def upgrade(raw_url: str) -> str | None:
    """Migrate the database DATABASE_URL names; its revision afterwards."""
    db = Database(raw_url, pool_size=1)
    try:
        await db.upgrade()
        return await db.revision()
    finally:
        await db.close()


def sqlite_path(raw_url: str) -> Path | None:
    """The file of a SQLite DATABASE_URL (None: Postgres, or in memory)."""
    url = engine_url(raw_url)
    if url.get_backend_name() != "sqlite" or not _sqlite_file(url):
        return None
    return Path(str(url.database))


def _upgrade(connection: Connection) -> None:
    from alembic import command

    before = _current_revision(connection)
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    after = _current_revision(connection)
    if after != before:
        log.info("database schema migrated from %s to %s", before or "(empty)", after)


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers (key lookups, admin queries) never wait for the usage writer, and the
    # workers of one host can share the file. NORMAL is durable across a process crash.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(CONNECT_TIMEOUT * 1000)}")
    cursor.close()
