"""Usage of every request: written off the request path, read back summed by the database.

A request that ends hands its context to `UsageWriter.submit` (an append to a bounded queue;
nothing else). Every FLUSH_INTERVAL a background task turns what is queued into rows and
writes them in one transaction: the request log, the per-day totals (upserted) and each
virtual key's spend. While the database is down the rows stay queued, up to USAGE_QUEUE_MAX
per process; beyond that new ones are dropped and counted (`fal_proxy_usage_records_dropped`).
A request never waits for, or fails because of, any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import and_, delete, func, select, tuple_

from ..base.metrics import Metrics
from ..base.tasks import cancel_and_wait
from .accounts import KeyCache, KeyRecord, KeyStore, charge
from .db import Database
from .periods import utc_day
from .schema import requests, usage_daily

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0  # seconds between writes
MAX_BATCH = 5000  # rows per transaction
RETRY_INTERVAL = 2.0  # seconds between writes while the database is down
RETENTION_INTERVAL = 3600.0  # seconds between deletions of old request-log rows
_DELETE_CHUNK = 5000


class UsageRecord(NamedTuple):
    """One request, as the request log stores it (`store/schema.py`'s `requests`): a tuple,
    so that it is its own row of parameters."""

    created_at: float
    request_id: str
    key_id: str  # a virtual key's id, "static", "passthrough:<fingerprint>" or "open"
    endpoint: str
    model: str | None
    route: str | None
    fal_app: str | None
    fal_request_id: str | None
    status: int
    error_type: str | None
    latency_ms: float
    ttfb_ms: float | None
    stream: bool | None
    input_tokens: int | None
    output_tokens: int | None
    images: int | None
    audio_seconds_in: float | None
    audio_seconds_out: float | None
    video_seconds: float | None
    cost: float | None
    cost_source: str | None
    billable_units: float | None
    prompt: str | None
    answer: str | None


Converter = Callable[[Any], UsageRecord]
RECORD_FIELDS = UsageRecord._fields


def insert_sql(db: Database) -> str:
    """The request log's INSERT in the driver's own dialect: an executemany of plain tuples
    costs half the CPU of SQLAlchemy's per-row parameter processing (bench/accounting.py)."""
    names = ", ".join(RECORD_FIELDS)
    marks = ", ".join("?" if db.is_sqlite else f"${n}" for n in range(1, len(RECORD_FIELDS) + 1))
    return f"INSERT INTO requests ({names}) VALUES ({marks})"


class UsageWriter:
    """The bounded queue and its background writer (one per process)."""

    def __init__(
        self,
        db: Database,
        keys: KeyStore,
        cache: KeyCache,
        metrics: Metrics,
        *,
        convert: Converter,
        max_queue: int,
        converted: Callable[[], None] | None = None,
        interval: float = FLUSH_INTERVAL,
    ) -> None:
        self._db = db
        self._keys = keys
        self._cache = cache
        self._metrics = metrics
        self._convert = convert
        self._converted = converted  # called after each run of conversions
        self._max_queue = max_queue
        self._interval = interval
        self._items: deque[Any] = deque()  # what requests handed in, not yet converted
        self._records: deque[UsageRecord] = deque()  # converted, waiting for the database
        self._writing = 0  # records in the transaction under way
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._insert = insert_sql(db)
        self._upsert = upsert_daily_sql(db)
        self.up = True  # the last write succeeded
        self.written = 0
        metrics.watch_usage(self.queued, lambda: self.up)

    def queued(self) -> int:
        return len(self._items) + len(self._records) + self._writing

    def submit(self, item: Any) -> bool:
        """Queue one ended request; False (and counted) when the queue is full."""
        if len(self._items) + len(self._records) + self._writing >= self._max_queue:
            self._metrics.usage_dropped.inc()
            return False
        self._items.append(item)
        return True

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="usage-writer")

    async def close(self, within: float = 5.0) -> None:
        """Stop, writing what is queued first (for at most `within` seconds). The loop is
        asked to stop, not cancelled: a write under way finishes (a cancelled one could not
        say whether it committed)."""
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(within):
                if self._task is not None:
                    self._stopping.set()
                    await self._task
                while self.queued() and await self.flush():
                    pass
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if left := self.queued():
            log.warning("%d usage record(s) could not be written before exit", left)
            self._metrics.usage_dropped.inc(left)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                delay = self._interval if self.up else RETRY_INTERVAL
                await asyncio.wait_for(self._stopping.wait(), delay)
            while await self.flush() and len(self._items) + len(self._records) >= MAX_BATCH:
                pass  # a backlog: keep writing

    async def flush(self) -> bool:
        """Write up to MAX_BATCH queued records; False if the database refused them."""
        self._convert_items()
        batch = [self._records.popleft() for _ in range(min(MAX_BATCH, len(self._records)))]
        if not batch:
            return True
        self._writing = len(batch)
        try:
            await self._write(batch)
        except asyncio.CancelledError:
            self._records.extendleft(reversed(batch))  # not lost (if it committed: twice)
            raise
        except Exception as exc:  # whatever a dead database raises: keep the rows, say so once
            self._records.extendleft(reversed(batch))
            if self.up:
                log.warning(
                    "cannot write usage to %s (%s); keeping up to %d records until it is back",
                    self._db.where,
                    type(exc).__name__,
                    self._max_queue,
                )
            self.up = False
            return False
        finally:
            self._writing = 0
        if not self.up:
            log.warning("usage is written to %s again", self._db.where)
        self.up = True
        self.written += len(batch)
        return True

    def _convert_items(self) -> None:
        items = self._items
        if not items:
            return
        while items:
            try:
                record = self._convert(items.popleft())
            except Exception:  # a bug must not lose the rest of the queue
                log.exception("a usage record could not be built; it is dropped")
                self._metrics.usage_dropped.inc()
                continue
            self._records.append(record)
        if self._converted is not None:
            self._converted()

    async def _write(self, batch: list[UsageRecord]) -> None:
        charged: dict[str, float] = {}
        charges: dict[tuple[str, str], tuple[float, float]] = {}
        for record in batch:
            if record.cost and not _is_shared(record.key_id):
                bucket = (record.key_id, day_of(record.created_at))
                amount, _ = charges.get(bucket, (0.0, 0.0))
                charges[bucket] = (amount + record.cost, record.created_at)
                charged[record.key_id] = charged.get(record.key_id, 0.0) + record.cost
        async with self._cache.lock:
            async with self._db.begin() as connection:
                await connection.exec_driver_sql(self._insert, batch)
                await connection.exec_driver_sql(self._upsert, daily_totals(batch))
                for (key_id, _), (amount, when) in charges.items():
                    await charge(connection, key_id, amount, when)
            # Read back the charged keys before anything else sees the cache: their spend now
            # includes what was pending. The rows are written whatever happens here.
            fresh: list[KeyRecord] = []
            with contextlib.suppress(Exception):
                fresh = await self._keys.by_ids(list(charged)) if charged else []
            self._cache.settle(charged, fresh)


def _is_shared(key_id: str) -> bool:
    """Static, pass-through and open clients have no key row to charge."""
    return key_id == "static" or key_id == "open" or key_id.startswith("passthrough:")


_SUMMED = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "images",
    "audio_seconds",
    "video_seconds",
    "cost",
    "unpriced",
)


_DAYS: dict[int, str] = {}


def day_of(when: float) -> str:
    """utc_day, remembered per day number (strftime per row would cost more than the row)."""
    number = int(when // 86400)
    day = _DAYS.get(number)
    if day is None:
        if len(_DAYS) > 1000:
            _DAYS.clear()
        day = _DAYS[number] = utc_day(when)
    return day


def daily_totals(batch: Sequence[UsageRecord]) -> list[tuple[Any, ...]]:
    """The batch summed per (day, key, model, endpoint), as DAILY_FIELDS tuples."""
    totals: dict[tuple[str, str, str, str], list[Any]] = {}
    for r in batch:
        group = (day_of(r.created_at), r.key_id, r.model or "", r.endpoint)
        sums = totals.get(group)
        if sums is None:
            sums = totals[group] = [0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0]
        sums[0] += 1
        sums[1] += r.status >= 400
        sums[2] += r.input_tokens or 0
        sums[3] += r.output_tokens or 0
        sums[4] += r.images or 0
        sums[5] += (r.audio_seconds_in or 0) + (r.audio_seconds_out or 0)
        sums[6] += r.video_seconds or 0
        sums[7] += r.cost or 0
        sums[8] += r.cost is None
    return [(*group, *sums) for group, sums in totals.items()]


DAILY_FIELDS = ("day", "key_id", "model", "endpoint", *_SUMMED)


def upsert_daily_sql(db: Database) -> str:
    """INSERT … ON CONFLICT DO UPDATE adding to a day's totals: the same SQL on both engines,
    in the driver's own dialect (as `insert_sql`), one tuple per group."""
    names = ", ".join(DAILY_FIELDS)
    marks = ", ".join("?" if db.is_sqlite else f"${n}" for n in range(1, len(DAILY_FIELDS) + 1))
    sums = ", ".join(f"{name} = usage_daily.{name} + excluded.{name}" for name in _SUMMED)
    return (
        f"INSERT INTO usage_daily ({names}) VALUES ({marks}) "
        f"ON CONFLICT (day, key_id, model, endpoint) DO UPDATE SET {sums}"
    )


# -- reading -------------------------------------------------------------------------------------

GROUPS = {"key": "key_id", "model": "model", "day": "day", "endpoint": "endpoint"}
REQUEST_FIELDS = [str(c.name) for c in requests.columns]  # plain str: orjson wants it


class UsageQueries:
    def __init__(self, db: Database, keys: KeyStore) -> None:
        self._db = db
        self._keys = keys

    async def totals(self, start_day: str, end_day: str, group_by: str) -> list[dict[str, Any]]:
        """Usage per group over whole UTC days [start_day, end_day], summed in the database."""
        column = usage_daily.c[GROUPS[group_by]]
        cost = func.sum(usage_daily.c.cost)
        query = (
            select(
                column.label("group"),
                func.sum(usage_daily.c.requests).label("requests"),
                func.sum(usage_daily.c.errors).label("errors"),
                func.sum(usage_daily.c.input_tokens).label("input_tokens"),
                func.sum(usage_daily.c.output_tokens).label("output_tokens"),
                func.sum(usage_daily.c.images).label("images"),
                func.sum(usage_daily.c.audio_seconds).label("audio_seconds"),
                func.sum(usage_daily.c.video_seconds).label("video_seconds"),
                cost.label("cost"),
            )
            .where(and_(usage_daily.c.day >= start_day, usage_daily.c.day <= end_day))
            .group_by(column)
            .order_by(column if group_by == "day" else cost.desc(), column)
        )
        async with self._db.connect() as connection:
            rows = (await connection.execute(query)).all()
        data = [
            {
                "group": r.group,
                "requests": int(r.requests),
                "errors": int(r.errors),
                "input_tokens": int(r.input_tokens),
                "output_tokens": int(r.output_tokens),
                "images": int(r.images),
                "audio_seconds": round(float(r.audio_seconds), 3),
                "video_seconds": round(float(r.video_seconds), 3),
                "cost": round(float(r.cost), 9),
            }
            for r in rows
        ]
        if group_by == "key":
            names = await self._keys.names(d["group"] for d in data)
            for d in data:
                d["name"] = names.get(d["group"])
        return data

    async def log(
        self,
        *,
        key_id: str | None = None,
        model: str | None = None,
        status: int | None = None,
        since: float | None = None,
        limit: int = 100,
        after: int | None = None,
    ) -> tuple[list[dict[str, Any]], bool] | None:
        """The request log, newest first: (rows, has_more); None if `after` is unknown."""
        conditions = []
        if key_id is not None:
            conditions.append(requests.c.key_id == key_id)
        if model is not None:
            conditions.append(requests.c.model == model)
        if status is not None:
            conditions.append(requests.c.status == status)
        if since is not None:
            conditions.append(requests.c.created_at >= since)
        async with self._db.connect() as connection:
            if after is not None:
                cursor = (
                    await connection.execute(
                        select(requests.c.created_at).where(requests.c.id == after)
                    )
                ).one_or_none()
                if cursor is None:
                    return None
                position = tuple_(requests.c.created_at, requests.c.id)
                conditions.append(position < tuple_(cursor.created_at, after))
            query = (
                select(requests)
                .where(and_(True, *conditions))
                .order_by(requests.c.created_at.desc(), requests.c.id.desc())
                .limit(limit + 1)
            )
            rows = (await connection.execute(query)).all()
        return [dict(zip(REQUEST_FIELDS, r, strict=True)) for r in rows[:limit]], len(rows) > limit


async def delete_older_than(db: Database, cutoff: float) -> int:
    """Delete request-log rows that arrived before `cutoff`, a chunk per transaction (the
    per-day totals stay)."""
    deleted = 0
    while True:
        old = select(requests.c.id).where(requests.c.created_at < cutoff).limit(_DELETE_CHUNK)
        async with db.begin() as connection:
            result = await connection.execute(delete(requests).where(requests.c.id.in_(old)))
        deleted += result.rowcount
        if result.rowcount < _DELETE_CHUNK:
            return deleted


class Retention:
    """REQUEST_LOG_RETENTION_DAYS: deletes old request-log rows in the background."""

    def __init__(self, db: Database, days: int, interval: float = RETENTION_INTERVAL) -> None:
        self._db = db
        self._days = days
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._days > 0:
            self._task = asyncio.create_task(self._loop(), name="request-log-retention")

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    async def run_once(self) -> int:
        return await delete_older_than(self._db, time.time() - self._days * 86400)

    async def _loop(self) -> None:
        while True:
            try:
                deleted = await self.run_once()
            except Exception as exc:  # the database is down: try again next time
                log.warning("request-log retention failed (%s)", type(exc).__name__)
            else:
                if deleted:
                    log.info("request log: deleted %d rows older than %d days", deleted, self._days)
            await asyncio.sleep(self._interval)
