"""Virtual keys: the table's rows (`KeyStore`) and this process's cache of them (`KeyCache`).

A key's secret is `sk-fal-` and 40 random characters; only its SHA-256 is stored, and a
request's key is found by looking its hash up (in the cache, else by the unique index), never
by scanning. The cache is re-read every REFRESH_INTERVAL in the background, so a key deleted,
disabled or charged on another replica is seen here within about a second, and a request never
awaits the database for a key this process has seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from sqlalchemy import Row, and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..base.tasks import cancel_and_wait
from .db import Database
from .periods import LIFETIME, PERIODS, next_period_start, period_start
from .schema import api_keys, requests

log = logging.getLogger(__name__)

KEY_PREFIX = "sk-fal-"
KEY_RANDOM_CHARS = 40  # base62: about 238 bits
_ALPHABET = string.ascii_letters + string.digits
REFRESH_INTERVAL = 0.5  # seconds between re-reads of the cached keys
UNKNOWN_TTL = 1.0  # seconds an unknown hash is remembered (a flood of bad keys stays cheap)
IDLE_EVICTION = 600.0  # seconds a key unused here stays cached
_CHUNK = 500  # hashes per IN (...) query
_MAX_UNKNOWN = 10_000


def new_secret() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_RANDOM_CHARS))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_virtual(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


class Refusal(Enum):
    """Why a virtual key may not make a request now."""

    DELETED = "deleted"
    DISABLED = "disabled"
    EXPIRED = "expired"
    BUDGET = "budget"


@dataclass(slots=True)
class KeyRecord:
    id: str
    key_hash: str
    key_hint: str
    name: str
    models: tuple[str, ...] | None
    max_budget: float | None
    budget_period: str | None
    rpm: int | None
    expires_at: int | None
    metadata: dict[str, Any]
    created_at: float
    disabled: bool
    deleted_at: int | None
    spend: float
    period_spend: float
    period_start: int

    @classmethod
    def from_row(cls, row: Row[Any]) -> KeyRecord:
        m = row._mapping
        models = orjson.loads(m["models"]) if m["models"] is not None else None
        return cls(
            id=m["id"],
            key_hash=m["key_hash"],
            key_hint=m["key_hint"],
            name=m["name"],
            models=tuple(models) if models is not None else None,
            max_budget=m["max_budget"],
            budget_period=m["budget_period"],
            rpm=m["rpm"],
            expires_at=m["expires_at"],
            metadata=orjson.loads(m["metadata"]),
            created_at=m["created_at"],
            disabled=bool(m["disabled"]),
            deleted_at=m["deleted_at"],
            spend=float(m["spend"]),
            period_spend=float(m["period_spend"]),
            period_start=m["period_start"],
        )

    def spend_this_period(self, now: float) -> float:
        """USD spent in the current period (the lifetime spend without a period)."""
        if self.budget_period is None:
            return self.spend
        current = period_start(self.budget_period, now)
        return self.period_spend if self.period_start == current else 0.0

    def refusal(self, now: float, pending: float = 0.0, budget: bool = True) -> Refusal | None:
        if self.deleted_at is not None:
            return Refusal.DELETED
        if self.disabled:
            return Refusal.DISABLED
        if self.expires_at is not None and now >= self.expires_at:
            return Refusal.EXPIRED
        limit = self.max_budget
        if budget and limit is not None and self.spend_this_period(now) + pending >= limit:
            return Refusal.BUDGET
        return None

    def public(self, now: float) -> dict[str, Any]:
        """The key object of the admin API (never the secret or its hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "key_hint": self.key_hint,
            "models": list(self.models) if self.models is not None else None,
            "max_budget": self.max_budget,
            "budget_period": self.budget_period,
            "rpm": self.rpm,
            "expires_at": self.expires_at,
            "metadata": self.metadata,
            "created_at": int(self.created_at),
            "disabled": self.disabled,
            "spend": round(self.spend, 9),
            "period_spend": round(self.spend_this_period(now), 9),
            "period_resets_at": next_period_start(self.budget_period, now),
        }


# The admin API's fields, as stored (`models` and `metadata` as JSON text).
EDITABLE = ("name", "models", "max_budget", "budget_period", "rpm", "expires_at", "metadata")


def _column_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(fields)
    if "models" in values:
        models = values["models"]
        values["models"] = orjson.dumps(list(models)).decode() if models is not None else None
    if "metadata" in values:
        values["metadata"] = orjson.dumps(values["metadata"] or {}).decode()
    return values


class KeyStore:
    """The api_keys table. Deleted keys keep their row (reports name them) but are never
    returned as live."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, fields: Mapping[str, Any]) -> tuple[KeyRecord, str]:
        """A new key from the admin API's fields; the record and its secret (shown once)."""
        secret = new_secret()
        now = time.time()
        values = {
            "models": None,
            "max_budget": None,
            "budget_period": None,
            "rpm": None,
            "expires_at": None,
            "metadata": {},
            **fields,
        }
        values = _column_values(values) | {
            "id": secrets.token_hex(8),
            "key_hash": hash_secret(secret),
            "key_hint": secret[-4:],
            "created_at": now,
            "disabled": False,
            "deleted_at": None,
            "spend": 0.0,
            "period_spend": 0.0,
            "period_start": period_start(values["budget_period"], now),
        }
        async with self._db.begin() as connection:
            await connection.execute(api_keys.insert().values(**values))
            row = (
                await connection.execute(select(api_keys).where(api_keys.c.id == values["id"]))
            ).one()
        return KeyRecord.from_row(row), secret

    async def get(self, key_id: str) -> KeyRecord | None:
        async with self._db.connect() as connection:
            row = (
                await connection.execute(
                    select(api_keys).where(
                        and_(api_keys.c.id == key_id, api_keys.c.deleted_at.is_(None))
                    )
                )
            ).one_or_none()
        return KeyRecord.from_row(row) if row is not None else None

    async def live(self) -> list[KeyRecord]:
        query = (
            select(api_keys)
            .where(api_keys.c.deleted_at.is_(None))
            .order_by(api_keys.c.created_at.desc(), api_keys.c.id)
        )
        async with self._db.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [KeyRecord.from_row(row) for row in rows]

    async def names(self, key_ids: Iterable[str]) -> dict[str, str]:
        """Names of these keys, deleted ones too (for reports)."""
        ids = list(set(key_ids))
        found: dict[str, str] = {}
        async with self._db.connect() as connection:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                query = select(api_keys.c.id, api_keys.c.name).where(api_keys.c.id.in_(chunk))
                found.update({r.id: r.name for r in await connection.execute(query)})
        return found

    async def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Apply the admin API's changes (`disabled` too); None for an unknown id."""
        now = time.time()
        async with self._db.begin() as connection:
            live = and_(api_keys.c.id == key_id, api_keys.c.deleted_at.is_(None))
            row = (await connection.execute(select(api_keys).where(live))).one_or_none()
            if row is None:
                return None
            values = _column_values(changes)
            if "budget_period" in changes and changes["budget_period"] != row.budget_period:
                # A new period: its spend so far, from the request log.
                start = period_start(changes["budget_period"], now)
                values["period_start"] = start
                values["period_spend"] = (
                    await _spent_since(connection, key_id, start)
                    if start != LIFETIME
                    else float(row.spend)
                )
            if values:
                await connection.execute(update(api_keys).where(live).values(**values))
            row = (await connection.execute(select(api_keys).where(live))).one()
        return KeyRecord.from_row(row)

    async def delete(self, key_id: str) -> bool:
        live = and_(api_keys.c.id == key_id, api_keys.c.deleted_at.is_(None))
        async with self._db.begin() as connection:
            result = await connection.execute(
                update(api_keys).where(live).values(deleted_at=int(time.time()))
            )
        return bool(result.rowcount)

    async def find(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash (deleted ones too), by the unique index."""
        async with self._db.connect() as connection:
            row = (
                await connection.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))
            ).one_or_none()
        return KeyRecord.from_row(row) if row is not None else None

    async def by_hashes(self, hashes: list[str]) -> list[KeyRecord]:
        records = []
        async with self._db.connect() as connection:
            for start in range(0, len(hashes), _CHUNK):
                chunk = hashes[start : start + _CHUNK]
                query = select(api_keys).where(api_keys.c.key_hash.in_(chunk))
                records += [KeyRecord.from_row(r) for r in await connection.execute(query)]
        return records

    async def by_ids(self, key_ids: list[str]) -> list[KeyRecord]:
        records = []
        async with self._db.connect() as connection:
            for start in range(0, len(key_ids), _CHUNK):
                chunk = key_ids[start : start + _CHUNK]
                query = select(api_keys).where(api_keys.c.id.in_(chunk))
                records += [KeyRecord.from_row(r) for r in await connection.execute(query)]
        return records


async def charge(connection: AsyncConnection, key_id: str, amount: float, when: float) -> None:
    """Add `amount` USD to a key's spend, and to its period's (restarting a period that has
    ended). One statement, so that replicas charging at once add up."""
    period = api_keys.c.budget_period
    start = case(*((period == p, period_start(p, when)) for p in PERIODS), else_=LIFETIME)
    same = api_keys.c.period_start == start
    await connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(
            spend=api_keys.c.spend + amount,
            period_spend=case((same, api_keys.c.period_spend + amount), else_=amount),
            period_start=start,
        )
    )


async def _spent_since(connection: AsyncConnection, key_id: str, start: int) -> float:
    query = select(func.coalesce(func.sum(requests.c.cost), 0.0)).where(
        and_(requests.c.key_id == key_id, requests.c.created_at >= start)
    )
    return float((await connection.execute(query)).scalar_one())


@dataclass(slots=True)
class _Entry:
    record: KeyRecord
    used_at: float


class KeyCache:
    """The keys this process has seen, by hash, kept fresh in the background.

    `pending` holds what requests that ended here have cost and the database does not show
    yet (the usage writer settles it once written), so that this process's own budget checks
    are exact; other replicas' spend arrives with the next refresh.
    """

    def __init__(self, store: KeyStore, *, refresh_interval: float = REFRESH_INTERVAL) -> None:
        self._store = store
        self._entries: dict[str, _Entry] = {}
        self._unknown: dict[str, float] = {}  # hash -> until when it is known to be unknown
        self._interval = refresh_interval
        self.pending: dict[str, float] = {}
        # Held while a refresh, or a write with its settling, is under way: neither may see
        # the other half done (a charge counted twice, or not at all).
        self.lock = asyncio.Lock()
        self.up = True  # the last read succeeded
        self._task: asyncio.Task[None] | None = None

    def get(self, key_hash: str, now: float) -> KeyRecord | bool | None:
        """The cached record; None if known to be unknown; False if not cached."""
        entry = self._entries.get(key_hash)
        if entry is not None:
            entry.used_at = now
            return entry.record
        until = self._unknown.get(key_hash)
        if until is not None and now < until:
            return None
        return False

    async def lookup(self, key_hash: str) -> KeyRecord | None:
        """A cache miss: read the key by its hash (raises if the database is unreachable)."""
        record = await self._store.find(key_hash)
        now = time.monotonic()
        if record is None:
            if len(self._unknown) >= _MAX_UNKNOWN:
                self._unknown.clear()
            self._unknown[key_hash] = now + UNKNOWN_TTL
            return None
        self.put(record)
        return record

    def put(self, record: KeyRecord) -> None:
        """Cache a record read or written here (the admin API's changes apply at once)."""
        self._unknown.pop(record.key_hash, None)
        entry = self._entries.get(record.key_hash)
        if entry is None:
            self._entries[record.key_hash] = _Entry(record, time.monotonic())
        else:
            entry.record = record

    def find_id(self, key_id: str) -> KeyRecord | None:
        for entry in self._entries.values():
            if entry.record.id == key_id:
                return entry.record
        return None

    def pending_for(self, key_id: str) -> float:
        return self.pending.get(key_id, 0.0)

    def add_pending(self, key_id: str, amount: float) -> None:
        self.pending[key_id] = self.pending.get(key_id, 0.0) + amount

    def settle(self, charged: Mapping[str, float], fresh: Iterable[KeyRecord]) -> None:
        """After a write: the fresh records carry the charges, so they are pending no more.
        Call with `lock` held, with no await between reading `fresh` and this."""
        for record in fresh:
            self.put_if_cached(record)
        for key_id, amount in charged.items():
            left = self.pending.get(key_id, 0.0) - amount
            if left > 1e-12:
                self.pending[key_id] = left
            else:
                self.pending.pop(key_id, None)

    def put_if_cached(self, record: KeyRecord) -> None:
        entry = self._entries.get(record.key_hash)
        if entry is not None:
            entry.record = record

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="key-cache")

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    async def refresh(self) -> None:
        now = time.monotonic()
        idle = [h for h, e in self._entries.items() if now - e.used_at > IDLE_EVICTION]
        for key_hash in idle:
            del self._entries[key_hash]
        hashes = list(self._entries)
        if not hashes:
            return
        async with self.lock:
            records = await self._store.by_hashes(hashes)
            found = {r.key_hash for r in records}
            for record in records:
                self.put_if_cached(record)
        for key_hash in set(hashes) - found:  # the row is gone: treat as unknown
            self._entries.pop(key_hash, None)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception as exc:  # the database is down: keep the last known state
                if self.up:
                    log.warning(
                        "cannot refresh virtual keys from the database (%s); known keys keep "
                        "their last state",
                        type(exc).__name__,
                    )
                self.up = False
            else:
                if not self.up:
                    log.warning("virtual keys are read from the database again")
                self.up = True


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
