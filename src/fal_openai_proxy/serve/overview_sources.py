"""What the accounts database tells GET /admin/overview: the cost and requests of the UTC day
so far (every replica's), and whether the database answers. Read when the overview is asked
for (the admin's page, every few seconds), never on the request path."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import text

from ..services.overview import DatabaseState, UsageToday
from ..store.periods import utc_day
from .accounting import Accounts

log = logging.getLogger(__name__)
TIMEOUT = 2.0  # seconds: a slower database is reported down, and the page does not wait


def database_sources(accounts: Accounts) -> tuple[UsageToday, DatabaseState]:
    async def usage_today() -> dict[str, Any] | None:
        day = utc_day(time.time())
        try:
            async with asyncio.timeout(TIMEOUT):
                rows = await accounts.queries.totals(day, day, "day")
        except Exception as exc:  # the database is down: the day's cost is unknown
            log.info("overview: no usage of the day (%s)", type(exc).__name__)
            return None
        cost = sum(float(r["cost"]) for r in rows)
        return {"cost": round(cost, 9), "requests": sum(int(r["requests"]) for r in rows)}

    async def database_state() -> str:
        try:
            async with asyncio.timeout(TIMEOUT), accounts.db.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return "down"
        return "up"

    return usage_today, database_state
