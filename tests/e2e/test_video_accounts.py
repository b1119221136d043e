"""Videos with accounts, on SQLite and on Postgres (the accounts' one database): a virtual key
sees only its own videos, a video's seconds and cost are written by the usage writer, a key's
budget and model globs apply to videos, and a spent budget still lets a key read back what it
paid for. Driven with the openai SDK against the simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from fal_openai_proxy.simulator.video import SAMPLE_VIDEO

from ..support.accounts import SETTLE, Admin
from ..support.asserts import wait_for
from ..support.chat import sim
from ..support.servers import ADMIN_KEY, API_KEY, RunningProxy, proxy_settings, start_proxy

# The SDK marks the Videos API deprecated (Sora's shutdown); the calls are what clients make.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
POLL_MS = 50
# sora-2 runs FAL_VIDEO_APP, fal-ai/veo3.1/fast: $0.15 a second in the shipped price table.
VEO_FAST_PER_SECOND = 0.15


@pytest.fixture
def accounts_proxy(sim: Any, database_url: str) -> Iterator[RunningProxy]:
    """A proxy with virtual keys on this test's database (each engine in turn)."""
    running = start_proxy(
        proxy_settings(
            sim,
            database_url=database_url,
            admin_key=ADMIN_KEY,
            api_key=API_KEY,
            video_watch_interval=0.1,
        )
    )
    yield running
    running.stop()


@pytest.fixture
def admin(accounts_proxy: RunningProxy, http: httpx.Client) -> Admin:
    return Admin(http, accounts_proxy.base_url)


@pytest.fixture
def key_client(
    accounts_proxy: RunningProxy, admin: Admin, make_client: Callable[..., openai.OpenAI]
) -> Callable[..., tuple[dict[str, Any], openai.OpenAI]]:
    """A new virtual key (its admin record) and an openai client using it."""

    def make(**fields: Any) -> tuple[dict[str, Any], openai.OpenAI]:
        created = admin.create_key(**fields)
        return created, make_client(accounts_proxy, api_key=created["key"])

    return make


def test_a_virtual_key_sees_only_its_own_videos(
    key_client: Callable[..., tuple[dict[str, Any], openai.OpenAI]],
) -> None:
    _, alice = key_client(name="alice")
    _, bob = key_client(name="bob")
    video = alice.videos.create_and_poll(prompt="alice's harbour", poll_interval_ms=POLL_MS)
    assert video.status == "completed"
    theirs = bob.videos.create(prompt="bob's " + sim({"latency_ms": 5000}))
    for call in (
        lambda: bob.videos.retrieve(video.id),
        lambda: bob.videos.download_content(video.id),
        lambda: bob.videos.delete(video.id),
        lambda: bob.videos.remix(video.id, prompt="taken"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.code == "video_not_found"
    assert [v.id for v in bob.videos.list(limit=100).data] == [theirs.id]
    assert [v.id for v in alice.videos.list(limit=100).data] == [video.id]
    # Another key's id as a cursor pages nothing of theirs.
    assert [v.id for v in alice.videos.list(after=theirs.id).data] == [video.id]
    assert alice.videos.download_content(video.id).read() == SAMPLE_VIDEO
    bob.videos.delete(theirs.id)
    assert bob.videos.list().data == []


def test_a_videos_seconds_and_cost_reach_the_usage_store(
    key_client: Callable[..., tuple[dict[str, Any], openai.OpenAI]], admin: Admin
) -> None:
    created, client = key_client(name="studio")
    video = client.videos.create(model="sora-2", prompt="a mill", seconds="8", size="1280x720")
    client.videos.poll(video.id, poll_interval_ms=POLL_MS)

    def made() -> list[dict[str, Any]]:
        rows = admin.requests(key_id=created["id"], limit=200)["data"]
        return [r for r in rows if r["endpoint"] == "/v1/videos" and r["video_seconds"]]

    (row,) = wait_for(made, within=SETTLE, what="the video's usage row")
    assert row["model"] == "sora-2" and row["fal_app"] == "fal-ai/veo3.1/fast"
    assert row["video_seconds"] == 8
    assert row["cost"] == pytest.approx(8 * VEO_FAST_PER_SECOND)
    assert row["cost_source"] == "price_table"
    assert row["fal_request_id"]
    # Polling costs nothing: the key's spend is the video's cost alone.
    spend = wait_for(lambda: admin.key(created["id"])["spend"], within=SETTLE)
    assert spend == pytest.approx(8 * VEO_FAST_PER_SECOND)
    totals = [r for r in admin.usage(group_by="key") if r["group"] == created["id"]]
    assert totals[0]["video_seconds"] == 8


def test_a_submit_fal_refuses_costs_nothing(
    key_client: Callable[..., tuple[dict[str, Any], openai.OpenAI]], admin: Admin
) -> None:
    created, client = key_client(name="unlucky")
    with pytest.raises(openai.InternalServerError):
        client.videos.create(prompt="refused " + sim({"status": 500}), seconds="8")
    (row,) = wait_for(
        lambda: admin.requests(key_id=created["id"])["data"], within=SETTLE, what="the row"
    )
    assert row["status"] == 502 and row["cost"] is None  # fal's 500: a bad gateway
    assert admin.key(created["id"])["spend"] == 0


def test_a_budget_stops_new_videos_but_not_reading_the_paid_ones(
    key_client: Callable[..., tuple[dict[str, Any], openai.OpenAI]],
) -> None:
    # One 8-second video ($1.20) passes the check of a $1 budget; the next does not start.
    _, client = key_client(name="thrifty", max_budget=1.0)
    video = client.videos.create(model="sora-2", prompt="one only", seconds="8")
    with pytest.raises(openai.RateLimitError) as refused:
        client.videos.create(model="sora-2", prompt="one more", seconds="4")
    assert refused.value.code == "insufficient_quota"
    done = client.videos.poll(video.id, poll_interval_ms=POLL_MS)
    assert done.status == "completed"
    assert client.videos.download_content(video.id).read() == SAMPLE_VIDEO
    assert [v.id for v in client.videos.list().data] == [video.id]
    with pytest.raises(openai.RateLimitError):
        client.videos.remix(video.id, prompt="and more")
    assert client.videos.delete(video.id).deleted


def test_a_keys_model_globs_apply_to_videos(
    key_client: Callable[..., tuple[dict[str, Any], openai.OpenAI]],
) -> None:
    _, client = key_client(name="kling only", models=["fal-ai/kling-video/*"])
    video = client.videos.create(
        model="fal-ai/kling-video/v2.5-turbo/pro/text-to-video", prompt="x"
    )
    assert video.status == "queued"
    for model in ("sora-2", "fal-ai/veo3.1"):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.videos.create(model=model, prompt="not mine")  # type: ignore[arg-type]
        body = refused.value.body
        assert isinstance(body, dict)
        assert body["code"] == "model_not_allowed" and body["param"] == "model"


def test_a_video_made_while_the_database_is_down_reaches_the_list(
    accounts_proxy: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    store_outage: Callable[[bool], None],
    database_url: str,
) -> None:
    client = make_client(accounts_proxy, api_key=API_KEY)
    store_outage(True)
    try:
        # fal accepts the job: the video is made and retrievable without the database.
        video = client.videos.create(prompt="in the dark")
        assert client.videos.poll(video.id, poll_interval_ms=POLL_MS).status == "completed"
        if database_url.startswith("postgresql"):  # gone; SQLite's readers still read
            with pytest.raises(openai.InternalServerError) as caught:
                client.videos.list()
            assert caught.value.status_code == 503
            assert caught.value.code == "service_unavailable"
            assert "retry" in caught.value.message
    finally:
        store_outage(False)
    # Its record was retried, not dropped: the list has it once the database is back.
    listed = wait_for(
        lambda: [v.id for v in client.videos.list().data], within=SETTLE, what="the record"
    )
    assert listed == [video.id]
