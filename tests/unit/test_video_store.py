"""The videos table on both engines (the accounts' database, one migration chain): cursor
pages per owner, outcomes, deletion tombstones, and the claim that lets one replica send each
webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from fal_openai_proxy.store.db import Database, alembic_config, head_revision
from fal_openai_proxy.store.videos import DELIVERED, Outcome, SqlVideoStore, VideoRow


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The accounts' database (SQLite, then a throwaway Postgres), migrated to the head."""
    made = Database(database_url)
    await made.upgrade()
    yield made
    await made.close()


def row(n: int, owner: str = "alice") -> VideoRow:
    return VideoRow(f"video_{owner}_{n}", owner, 1000 + n, "sora-2", "fal-ai/veo3.1/fast",
                    f"req-{owner}-{n}", f"scene {n}", "8", "1280x720")  # fmt: skip


async def test_pages_are_per_owner_newest_first_by_cursor(db: Database) -> None:
    store = SqlVideoStore(db)
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


async def test_outcomes_deletions_and_webhook_claims(db: Database) -> None:
    store = SqlVideoStore(db)
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


async def test_videos_come_after_the_accounts_in_one_migration_chain(db: Database) -> None:
    """0002_videos follows 0001_accounts: one chain, one schema, the accounts' tables kept."""
    script = ScriptDirectory.from_config(alembic_config())
    assert [r.revision for r in script.walk_revisions()][-2:] == ["0002", "0001"]
    assert len(script.get_heads()) == 1  # no branch: every engine migrates one way
    assert await db.revision() == head_revision()
    async with db.connect() as connection:
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"api_keys", "requests", "usage_daily", "videos"} <= tables
