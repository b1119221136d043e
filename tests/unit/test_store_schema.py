"""One schema on both engines: the migrations build exactly the tables `store/schema.py`
describes, and the budget periods start where the calendar says."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from fal_openai_proxy.store.db import Database, head_revision
from fal_openai_proxy.store.periods import next_period_start, period_start
from fal_openai_proxy.store.schema import metadata


def test_the_migrations_build_the_schema_on_each_engine(database_url: str) -> None:
    async def check() -> tuple[list[Any], str | None, set[str]]:
        db = Database(database_url)
        try:
            await db.upgrade()
            await db.upgrade()  # a second run changes nothing
            async with db.connect() as connection:
                diff = await connection.run_sync(
                    lambda c: compare_metadata(
                        MigrationContext.configure(c, opts={"compare_type": True}), metadata
                    )
                )
                tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            return diff, await db.revision(), tables
        finally:
            await db.close()

    diff, revision, tables = asyncio.run(check())
    assert diff == []
    assert revision == head_revision()
    assert tables == {"alembic_version", "api_keys", "requests", "usage_daily", "videos"}


def _unix(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=dt.UTC).timestamp())


def test_budget_periods_follow_the_utc_calendar() -> None:
    wednesday = _unix(2026, 12, 30, 23, 59) + 30
    assert period_start(None, wednesday) == 0
    assert period_start("day", wednesday) == _unix(2026, 12, 30)
    assert period_start("week", wednesday) == _unix(2026, 12, 28)  # that Monday
    assert period_start("month", wednesday) == _unix(2026, 12, 1)
    assert next_period_start("day", wednesday) == _unix(2026, 12, 31)
    assert next_period_start("week", wednesday) == _unix(2027, 1, 4)
    assert next_period_start("month", wednesday) == _unix(2027, 1, 1)  # across the year
    assert next_period_start("month", _unix(2027, 1, 31, 12)) == _unix(2027, 2, 1)
    assert next_period_start(None, wednesday) is None
