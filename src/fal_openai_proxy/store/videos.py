"""The videos a client created, for `GET /v1/videos` (newest first, by cursor) and
`DELETE /v1/videos/{id}`, and the open jobs the background watcher follows.

`retrieve` and `content` never need this table: the id carries what they need
(services/video_ids.py). A deleted video is kept as a tombstone (`deleted_at`) so that every
replica learns of the deletion (`deleted_since`) and forgets the id too.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import and_, or_, select, update

from .db import Database
from .schema import videos

Status = Literal["queued", "in_progress", "completed", "failed"]
OPEN: tuple[Status, ...] = ("queued", "in_progress")
DELIVERED, GAVE_UP = 2, 3
# A claim older than this is a sender that died: another may take the event over.
CLAIM_SECONDS = 300


@dataclass
class VideoRow:
    id: str
    owner: str
    created_at: int
    model: str
    app: str
    request_id: str
    prompt: str | None
    seconds: str
    size: str
    status: str = "queued"
    progress: int = 0
    completed_at: int | None = None
    expires_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    remixed_from: str | None = None
    notify_state: int = 0


@dataclass(frozen=True)
class Outcome:
    """What the watcher or a retrieve learnt of a job."""

    status: str
    progress: int
    completed_at: int | None = None
    expires_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None


class VideoStore(Protocol):
    async def add(self, row: VideoRow) -> None: ...
    async def get(self, video_id: str) -> VideoRow | None: ...
    async def page(
        self, owner: str, after: str | None, limit: int, newest_first: bool
    ) -> tuple[list[VideoRow], bool]:
        """Up to `limit` of `owner`'s videos after the one named; and whether more follow."""
        ...

    async def record(self, video_id: str, outcome: Outcome) -> None: ...
    async def delete(self, video_id: str) -> None: ...
    async def deleted_since(self, since: int) -> list[tuple[str, int]]: ...
    async def open_jobs(self, limit: int) -> list[VideoRow]: ...
    async def unnotified(self, limit: int) -> list[VideoRow]: ...
    async def claim_notification(self, video_id: str) -> bool: ...
    async def notified(self, video_id: str, state: int) -> None: ...


def lookup(video_id: str) -> str:
    return hashlib.sha256(video_id.encode()).hexdigest()


def _row(mapping: Any) -> VideoRow:
    return VideoRow(**{k: mapping[k] for k in VideoRow.__dataclass_fields__})


class SqlVideoStore:
    """The `videos` table, on the one database of DATABASE_URL (`store/db.py`, the engine the
    accounts use; the table comes with their migrations, `migrations/versions/0002_videos.py`)."""

    def __init__(self, db: Database) -> None:
        self._engine = db.engine

    async def add(self, row: VideoRow) -> None:
        values = {**row.__dict__, "lookup": lookup(row.id)}
        async with self._engine.begin() as conn:
            await conn.execute(videos.insert().values(**values))

    async def get(self, video_id: str) -> VideoRow | None:
        query = select(videos).where(videos.c.lookup == lookup(video_id))
        async with self._engine.connect() as conn:
            found = (await conn.execute(query)).mappings().first()
        return None if found is None or found["deleted_at"] is not None else _row(found)

    async def page(
        self, owner: str, after: str | None, limit: int, newest_first: bool
    ) -> tuple[list[VideoRow], bool]:
        query = select(videos).where(videos.c.owner == owner, videos.c.deleted_at.is_(None))
        async with self._engine.connect() as conn:
            if after is not None:
                cursor = select(videos.c.seq).where(
                    videos.c.lookup == lookup(after), videos.c.owner == owner
                )
                seq = (await conn.execute(cursor)).scalar()
                if seq is not None:
                    query = query.where(videos.c.seq < seq if newest_first else videos.c.seq > seq)
            order = videos.c.seq.desc() if newest_first else videos.c.seq.asc()
            rows = (await conn.execute(query.order_by(order).limit(limit + 1))).mappings().all()
        return [_row(r) for r in rows[:limit]], len(rows) > limit

    async def record(self, video_id: str, outcome: Outcome) -> None:
        statement = (
            update(videos)
            .where(videos.c.lookup == lookup(video_id), videos.c.status.in_(OPEN))
            .values(**outcome.__dict__)
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    async def delete(self, video_id: str) -> None:
        statement = (
            update(videos)
            .where(videos.c.lookup == lookup(video_id))
            .values(deleted_at=int(time.time()), prompt=None)
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    async def deleted_since(self, since: int) -> list[tuple[str, int]]:
        query = select(videos.c.id, videos.c.deleted_at).where(videos.c.deleted_at >= since)
        async with self._engine.connect() as conn:
            return [(r.id, r.deleted_at) for r in await conn.execute(query)]

    async def open_jobs(self, limit: int) -> list[VideoRow]:
        query = (
            select(videos)
            .where(videos.c.status.in_(OPEN), videos.c.deleted_at.is_(None))
            .order_by(videos.c.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(query)).mappings()]

    async def unnotified(self, limit: int) -> list[VideoRow]:
        stale = int(time.time()) - CLAIM_SECONDS
        query = (
            select(videos)
            .where(
                videos.c.status.not_in(OPEN),
                videos.c.deleted_at.is_(None),
                or_(
                    videos.c.notify_state == 0,
                    and_(videos.c.notify_state == 1, videos.c.notify_at < stale),
                ),
            )
            .order_by(videos.c.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(query)).mappings()]

    async def claim_notification(self, video_id: str) -> bool:
        """Take the event for sending; False if another sender has it (one row, one winner)."""
        now = int(time.time())
        statement = (
            update(videos)
            .where(
                videos.c.lookup == lookup(video_id),
                or_(
                    videos.c.notify_state == 0,
                    and_(videos.c.notify_state == 1, videos.c.notify_at < now - CLAIM_SECONDS),
                ),
            )
            .values(notify_state=1, notify_at=now)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount)

    async def notified(self, video_id: str, state: int) -> None:
        statement = (
            update(videos)
            .where(videos.c.lookup == lookup(video_id))
            .values(notify_state=state, notify_at=int(time.time()))
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)
