"""Budget periods: a day, an ISO week (from Monday) or a calendar month, all in UTC."""

from __future__ import annotations

import datetime as dt
from typing import Literal

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
LIFETIME = 0  # the period_start of a key whose budget never resets


def period_start(period: str | None, now: float) -> int:
    """Unix time at which the period holding `now` began (LIFETIME for no period)."""
    if period is None:
        return LIFETIME
    day = dt.datetime.fromtimestamp(now, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= dt.timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return int(day.timestamp())


def next_period_start(period: str | None, now: float) -> int | None:
    """Unix time of the next reset (None for no period)."""
    if period is None:
        return None
    start = dt.datetime.fromtimestamp(period_start(period, now), dt.UTC)
    if period == "day":
        start += dt.timedelta(days=1)
    elif period == "week":
        start += dt.timedelta(days=7)
    else:
        start = (start + dt.timedelta(days=32)).replace(day=1)
    return int(start.timestamp())


def utc_day(when: float) -> str:
    """YYYY-MM-DD of `when` in UTC."""
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%d")
