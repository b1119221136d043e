"""The live model list (FAL_MODELS_REFRESH=1) against the simulator's platform API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest

from fal_openai_proxy.simulator.platform import PREFIX
from fal_openai_proxy.simulator.server import SimulatorThread

from ..conftest import CapturedLogs
from ..support.asserts import wait_for
from ..support.servers import FAL_KEY, RunningProxy, proxy_settings, start_proxy

Records = Callable[..., list[dict[str, Any]]]
# What the simulator lists (simulator/platform.py), by what the proxy must do with it.
LISTED = {  # text-to-image, active: every one is served by /v1/images/generations
    "fal-ai/flux/dev",
    "fal-ai/flux/schnell",
    "fal-ai/recraft/v3/text-to-image",
    "bytedance/seedream/v4/text-to-image",  # on the third page
}
DROPPED = {
    "openrouter/router",  # llm: a chat app, not a model id a client sends
    "fal-ai/kling-video/v2/master/image-to-video",  # a category the proxy does not serve
    "fal-ai/flux-lora-fast-training",  # training
    "fal-ai/ideogram/v2",  # deprecated (but a built-in image app: listed from the catalog)
    "fal-ai/whisper",  # speech-to-text: only the proxy's own apps (built in since the media work)
}


def epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


LiveProxy = Callable[..., RunningProxy]


@pytest.fixture
def live_proxy(sim: SimulatorThread) -> Iterator[LiveProxy]:
    """Proxies with the live list, stopped at the end of the test: their refreshers must not
    keep calling the shared simulator while other tests read its log."""
    started: list[RunningProxy] = []

    def start(mode: str = "", **overrides: Any) -> RunningProxy:
        values: dict[str, Any] = {
            "fal_models_refresh": True,
            "fal_api_url": sim.base_url + PREFIX + (f"/{mode}" if mode else ""),
            "fal_models_refresh_interval": 0.3,
        }
        running = start_proxy(proxy_settings(sim, **{**values, **overrides}))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def platform_calls(sim_log: Records) -> list[dict[str, Any]]:
    return sim_log("platform")


@pytest.fixture(scope="module")
def builtin_ids(proxy: RunningProxy, http: httpx.Client) -> list[str]:
    return [m["id"] for m in http.get(proxy.v1 + "/models").json()["data"]]


def test_live_list_follows_pages_and_keeps_served_categories(
    live_proxy: LiveProxy,
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    builtin_ids: list[str],
) -> None:
    client = make_client(live_proxy())
    wait_for(lambda: {m.id for m in client.models.list()} >= LISTED)
    models = {m.id: m for m in client.models.list()}
    # The live list adds none of these; those the proxy serves anyway come from the catalog.
    assert not (DROPPED - set(builtin_ids)) & set(models)
    # The built-in chat ids stay, first and unchanged; the live ids follow.
    assert list(models)[: len(builtin_ids)] == builtin_ids
    assert set(models) == set(builtin_ids) | LISTED
    seedream = models["bytedance/seedream/v4/text-to-image"]
    assert (seedream.owned_by, seedream.created) == ("bytedance", epoch("2025-09-10T00:00:00"))
    assert models["fal-ai/flux/dev"].created == epoch("2024-08-01T00:00:00")
    assert client.models.retrieve("fal-ai/flux/schnell").owned_by == "fal-ai"
    # Three pages per refresh, active only, the server's key; and it refreshes again.
    wait_for(lambda: len(platform_calls(sim_log)) >= 6)
    calls = platform_calls(sim_log)
    assert [c["query"].get("cursor") for c in calls[:3]] == [None, "Mw==", "Ng=="]
    assert all(c["query"]["status"] == "active" for c in calls)
    only_server_key = {c["key"] for c in calls} == {FAL_KEY}
    assert only_server_key, "the platform API did not get exactly the server's key"


def test_pass_through_sends_no_key_to_the_platform(
    live_proxy: LiveProxy,
    http: httpx.Client,
    sim_log: Records,
) -> None:
    running = live_proxy(fal_key=None)
    wait_for(lambda: len(platform_calls(sim_log)) >= 3)
    assert {c["key"] for c in platform_calls(sim_log)} == {None}
    response = http.get(running.v1 + "/models", headers={"Authorization": "Bearer client-own"})
    assert {m["id"] for m in response.json()["data"]} >= LISTED


@pytest.mark.parametrize("mode", ["fail-503", "fail-429", "garbage", "bad-page-2"])
def test_failing_platform_leaves_the_builtin_list(
    live_proxy: LiveProxy,
    http: httpx.Client,
    sim_log: Records,
    builtin_ids: list[str],
    captured_logs: CapturedLogs,
    mode: str,
) -> None:
    logs_before = len(captured_logs.lines)
    running = live_proxy(mode, fal_models_refresh_interval=0.05)
    metrics_url = running.base_url + "/metrics"

    def failures() -> float:
        for line in http.get(metrics_url).text.splitlines():
            if line.startswith("fal_proxy_model_refresh_failures_total "):
                return float(line.split()[1])
        return 0.0

    wait_for(lambda: failures() >= 1)
    assert [m["id"] for m in http.get(running.v1 + "/models").json()["data"]] == builtin_ids
    if mode == "bad-page-2":  # page 1 was fine, but a half-read list is never used
        assert any(c["query"].get("cursor") == "Mw==" for c in platform_calls(sim_log))
    records = [json.loads(line) for line in captured_logs.lines[logs_before:]]
    warnings = [
        r
        for r in records
        if r.get("logger") == "fal_openai_proxy.serve.model_refresh" and r.get("level") == "warning"
    ]
    assert len(warnings) == 1, warnings  # one warning per run of failures, not one per try
    assert "keeping the built-in list" in warnings[0]["msg"]


def test_nothing_waits_for_a_hanging_platform(
    live_proxy: LiveProxy,
    http: httpx.Client,
    sim_log: Records,
    builtin_ids: list[str],
) -> None:
    started = time.monotonic()
    running = live_proxy("hang")
    start_seconds = time.monotonic() - started
    wait_for(lambda: bool(platform_calls(sim_log)))  # the fetch is under way, and hangs
    started = time.monotonic()
    response = http.get(running.v1 + "/models")
    answer_seconds = time.monotonic() - started
    assert [m["id"] for m in response.json()["data"]] == builtin_ids
    assert start_seconds < 2.0, start_seconds
    assert answer_seconds < 0.5, answer_seconds
    started = time.monotonic()
    running.stop()  # the refresher is cancelled: shutdown does not wait for it either
    assert not running.thread.is_alive()
    assert time.monotonic() - started < 3.0


def test_kokoro_is_refreshed_from_its_text_to_audio_category(
    live_proxy: LiveProxy, make_client: Callable[..., openai.OpenAI]
) -> None:
    """fal lists Kokoro under `text-to-audio`, not `text-to-speech` (docs/fal-protocol.md §11)."""
    client = make_client(live_proxy())
    date = epoch("2025-01-20T00:00:00")
    wait_for(lambda: any(m.created == date for m in client.models.list()))
    (kokoro,) = [m for m in client.models.list() if m.created == date]
    assert kokoro.id == "fal-ai/kokoro/american-english"
