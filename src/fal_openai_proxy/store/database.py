"""The proxy's database: `DATABASE_URL` -> an async SQLAlchemy engine, migrated at start.

`sqlite:///path` runs on aiosqlite, `postgresql://…` on asyncpg; `none` turns the database
off. The schema is Alembic's (`store/migrations/`), one schema for both engines.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


class DatabaseURLError(ValueError):
    """A DATABASE_URL this proxy cannot use."""


def async_url(url: str) -> str:
    """`sqlite:///x.db` -> `sqlite+aiosqlite:///x.db`; `postgresql://` -> `+asyncpg`."""
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseURLError("DATABASE_URL is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise DatabaseURLError(
            f"DATABASE_URL: {backend!r} is not supported; use sqlite:///… or postgresql://…"
        )
    return parsed.set(drivername=_DRIVERS[backend]).render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(async_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # Readers and one writer at once, and a wait instead of "database is locked".
        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(connection: object, _record: object) -> None:
            cursor = connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (Alembic's `upgrade head`)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
