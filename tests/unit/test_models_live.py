"""fal/platform.py and the refresher, on a scripted Transport; the catalog's merge."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from fal_openai_proxy.base.metrics import Metrics
from fal_openai_proxy.fal.errors import FalConnectError
from fal_openai_proxy.fal.platform import PlatformError, PlatformModel, list_models
from fal_openai_proxy.serve.config_check import run_checks
from fal_openai_proxy.serve.model_refresh import SHARED_NAME, LiveModels, ModelRefresher
from fal_openai_proxy.services.catalog import Catalog, ModelCard

CATEGORIES = {"text-to-image", "speech-to-text"}


@dataclass
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = None  # type: ignore[assignment]


class Scripted:
    """A Transport answering `send` from a list: a Reply, or an exception to raise."""

    def __init__(self, *answers: Reply | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, Mapping[str, str]]] = []

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Reply:
        self.sent.append((url, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def open(self, *args: Any) -> Any:
        raise NotImplementedError

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        work.close()

    async def close(self) -> None:
        pass


def page(models: Sequence[Any], cursor: str | None = None) -> Reply:
    body = {"models": list(models), "next_cursor": cursor, "has_more": cursor is not None}
    return Reply(200, orjson.dumps(body))


def entry(endpoint_id: Any, category: str = "text-to-image", **metadata: Any) -> dict[str, Any]:
    return {"endpoint_id": endpoint_id, "metadata": {"category": category, **metadata}}


async def test_pages_are_followed_and_entries_parsed_defensively() -> None:
    http = Scripted(
        page(
            [
                entry("fal-ai/a", date="2024-08-01T00:00:00Z"),
                entry("fal-ai/b", "training"),  # not kept
                entry(42),
                "nonsense",
                {"endpoint_id": "fal-ai/c"},  # no metadata
                entry("noslash"),
                entry("fal-ai/old", status="deprecated"),
            ],
            cursor="Mg==",
        ),
        page([entry("acme/d", "speech-to-text", owner="Acme", updated_at="bad", date=None)]),
    )
    models = await list_models(http, "https://api.test", categories=CATEGORIES, key="k")
    assert models == [
        PlatformModel("fal-ai/a", "text-to-image", "fal-ai", 1722470400),
        PlatformModel("acme/d", "speech-to-text", "Acme", None),
    ]
    assert http.sent[0][0] == "https://api.test/v1/models?limit=100&status=active"
    assert http.sent[1][0].endswith("&cursor=Mg%3D%3D")
    assert http.sent[0][1]["Authorization"] == "Key k"
    assert [PlatformModel.from_json(m.to_json()) for m in models] == models


async def test_a_refused_key_is_dropped_the_api_is_public() -> None:
    http = Scripted(Reply(401, b'{"detail": "no"}'), page([entry("fal-ai/a")]))
    models = await list_models(http, "https://api.test", categories=CATEGORIES, key="k")
    assert [m.endpoint_id for m in models] == ["fal-ai/a"]
    assert "Authorization" not in http.sent[1][1]


@pytest.mark.parametrize(
    "answers",
    [
        [Reply(500, b"{}")],
        [Reply(200, b"<html>")],
        [Reply(200, b'{"models": {}}')],
        [page([], cursor="Mg=="), page([], cursor="Mg==")],  # a cursor that loops
        [Reply(200, b'{"models": [], "next_cursor": 3, "has_more": true}')],
        [FalConnectError("refused")],
    ],
    ids=["500", "html", "models-not-list", "cursor-loop", "cursor-not-str", "connect"],
)
async def test_bad_answers_fail_the_whole_list(answers: list[Reply | Exception]) -> None:
    with pytest.raises(PlatformError):
        await list_models(Scripted(*answers), "https://x", categories=CATEGORIES)


async def test_a_failed_refresh_keeps_the_previous_list(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics(multiprocess=False)
    source = LiveModels()
    http = Scripted(page([entry("fal-ai/a")]), Reply(503, b"{}"), Reply(503, b"{}"))
    refresher = ModelRefresher(
        http,
        api_url="https://x",
        key=None,
        categories=CATEGORIES,
        interval=1,
        source=source,
        metrics=metrics,
    )
    assert await refresher.refresh()
    kept = source.latest()
    assert not await refresher.refresh()
    assert not await refresher.refresh()
    assert source.latest() is kept
    assert metrics.model_refresh_failures._value.get() == 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "keeping the previous list" in warnings[0].getMessage()


class FakeStore:
    """The shared-store calls the refresher makes (a real Redis is in test_shared_state)."""

    def __init__(self) -> None:
        self.up = True
        self.holder: str | None = None
        self.values: dict[str, Any] = {}

    def as_replica(self, name: str) -> Any:
        store = self

        class Replica:
            @property
            def up(self) -> bool:
                return store.up

            async def hold_lock(self, lock: str, ttl: float) -> bool:
                if not store.up:
                    return False
                store.holder = store.holder or name
                return store.holder == name

            async def get_json(self, key: str) -> Any:
                return store.values.get(key) if store.up else None

            async def set_json(self, key: str, value: Any, ttl: float) -> bool:
                store.values[key] = value
                return True

        return Replica()


async def test_one_replica_fetches_the_others_read() -> None:
    store = FakeStore()
    leader_http = Scripted(page([entry("fal-ai/a")]))
    follower_http = Scripted()  # any fetch by the follower would fail: it has no answers

    def refresher(http: Scripted, name: str) -> ModelRefresher:
        return ModelRefresher(
            http, api_url="https://x", key=None, categories=CATEGORIES, interval=3600,
            source=LiveModels(), metrics=Metrics(multiprocess=False),
            store=store.as_replica(name),
        )  # fmt: skip

    leader, follower = refresher(leader_http, "one"), refresher(follower_http, "two")
    assert await leader.tick() == 3600
    assert await follower.tick() == 60  # it polls the shared list more often
    assert [m.endpoint_id for m in follower.source.latest()] == ["fal-ai/a"]
    assert follower.source.latest() == leader.source.latest()
    assert follower_http.sent == []  # read from the store, not fetched
    store.up = False  # Redis down: each replica fetches for itself
    follower_http.answers.append(page([entry("fal-ai/b")]))
    assert await follower.tick() == 3600
    assert [m.endpoint_id for m in follower.source.latest()] == ["fal-ai/b"]


@pytest.mark.parametrize("garbage", [{"a": 1}, [1, 2], 7, [{"endpoint_id": "x"}]])
async def test_garbage_in_the_shared_list_is_absent(garbage: Any) -> None:
    """Anyone with access to Redis may write there: the follower fetches its own list rather
    than dying (the refresh task once ended on it, for good)."""
    store = FakeStore()
    store.holder = "leader"
    store.values[SHARED_NAME] = garbage
    http = Scripted(page([entry("fal-ai/a")]))
    follower = ModelRefresher(
        http, api_url="https://x", key=None, categories=CATEGORIES, interval=3600,
        source=LiveModels(), metrics=Metrics(multiprocess=False), store=store.as_replica("two"),
    )  # fmt: skip
    assert await follower.tick() == 3600
    assert [m.endpoint_id for m in follower.source.latest()] == ["fal-ai/a"]


def test_catalog_merges_the_live_list() -> None:
    source = LiveModels()
    file_cards = [ModelCard("google/gemini-2.5-flash", "google"), ModelCard("fal-ai/whisper", "x")]
    catalog = Catalog("openrouter/router", file_cards, live=source)
    assert [m["id"] for m in catalog.list()] == ["google/gemini-2.5-flash", "fal-ai/whisper"]
    source.update(
        [
            PlatformModel("fal-ai/whisper", "speech-to-text", "fal-ai", 1714521600),
            PlatformModel("fal-ai/wizper", "speech-to-text", "fal-ai", 1),  # not the proxy's
            PlatformModel("fal-ai/flux/dev", "text-to-image", "fal-ai", 1722470400),
            PlatformModel("fal-ai/kling", "image-to-video", "fal-ai", 1),  # never listed
        ]
    )
    listed = {m["id"]: m for m in catalog.list()}
    assert list(listed) == ["google/gemini-2.5-flash", "fal-ai/whisper", "fal-ai/flux/dev"]
    assert (listed["fal-ai/whisper"]["owned_by"], listed["fal-ai/whisper"]["created"]) == (
        "fal-ai",
        1714521600,
    )
    assert catalog.get("fal-ai/flux/dev")["created"] == 1722470400
    # Metric labels stay bounded by the built-in list.
    assert catalog.metric_label("fal-ai/flux/dev") == "other"


def test_check_config_wants_an_http_api_url(tmp_path: Path) -> None:
    problems = run_checks({"fal_api_url": "ftp://api.fal.ai"}, env_file=None)
    assert "FAL_API_URL: must be an http:// or https:// URL." in problems
    assert not [p for p in run_checks({}, env_file=None) if "FAL_API_URL" in p]
