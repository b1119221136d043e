"""The videos table on both engines: migrations, cursor pages per owner, outcomes, deletion
tombstones, and the claim that lets one replica send each webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fal_openai_proxy.store.database import DatabaseURLError, async_url, create_engine, migrate
from fal_openai_proxy.store.videos import DELIVERED, Outcome, SqlVideoStore, VideoRow

from ..support.postgres import PostgresServer


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/videos.db"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.url
    made = create_engine(url)
    await migrate(made)
    await migrate(made)  # idempotent: a restart migrates nothing
    yield made
    if request.param == "postgresql":
        async with made.begin() as conn:
            await conn.exec_driver_sql("DROP TABLE videos")
            await conn.exec_driver_sql("DROP TABLE alembic_version")
    await made.dispose()


def row(n: int, owner: str = "alice") -> VideoRow:
    return VideoRow(f"video_{owner}_{n}", owner, 1000 + n, "sora-2", "fal-ai/veo3.1/fast",
                    f"req-{owner}-{n}", f"scene {n}", "8", "1280x720")  # fmt: skip


async def test_pages_are_per_owner_newest_first_by_cursor(engine: AsyncEngine) -> None:
    store = SqlVideoStore(engine)
    for n in range(5):
        await store.add(row(n))
        await store.add(row(n, "bob"))
    first, more = await store.page("alice", None, 2, newest_first=True)
    assert [r.id for r in first] == ["video_alice_4", "video_alice_3"]
    assert more
    rest, more = await store.page("alice", first[-1].id, 10, newest_first=True)
    assert [r.id for r in rest] == ["video_alice_2", "video_alice_1", "video_alice_0"]
    assert not more
    oldest, _ = await store.page("alice", None, 2, newest_first=False)
    assert [r.id for r in oldest] == ["video_alice_0", "video_alice_1"]
    # bob's cursor does not page through alice's videos
    foreign, _ = await store.page("bob", "video_alice_2", 10, newest_first=True)
    assert {r.owner for r in foreign} == {"bob"}
    assert len(foreign) == 5


async def test_outcomes_deletions_and_webhook_claims(engine: AsyncEngine) -> None:
    store = SqlVideoStore(engine)
    for n in range(3):
        await store.add(row(n))
    assert [r.id for r in await store.open_jobs(10)] == [f"video_alice_{n}" for n in range(3)]
    await store.record("video_alice_0", Outcome("completed", 100, 2000, 3000))
    await store.record("video_alice_0", Outcome("failed", 100))  # a finished video stays so
    done = await store.get("video_alice_0")
    assert done is not None
    assert (done.status, done.completed_at, done.expires_at) == ("completed", 2000, 3000)
    assert [r.id for r in await store.unnotified(10)] == ["video_alice_0"]
    assert await store.claim_notification("video_alice_0")
    assert not await store.claim_notification("video_alice_0")  # one sender wins
    await store.notified("video_alice_0", DELIVERED)
    assert await store.unnotified(10) == []
    await store.delete("video_alice_1")
    assert await store.get("video_alice_1") is None
    assert [i for i, _ in await store.deleted_since(0)] == ["video_alice_1"]
    assert "video_alice_1" not in [r.id for r in await store.open_jobs(10)]
    page, _ = await store.page("alice", None, 10, newest_first=True)
    assert [r.id for r in page] == ["video_alice_2", "video_alice_0"]


def test_database_urls() -> None:
    assert async_url("sqlite:///./x.db") == "sqlite+aiosqlite:///./x.db"
    assert async_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    for bad in ("mysql://h/db", "not a url"):
        with pytest.raises(DatabaseURLError):
            async_url(bad)
