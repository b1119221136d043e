"""Real fal's details (issue 14, part 3), each against the simulator playing what fal does:
a locked account, storage uploads answered with any 2xx, Ideogram's output without a prompt,
OpenRouter's `reasoning` (effort or max_tokens, never both), and `X-Fal-Request-Timeout`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.chat import MODEL, Records, ask, of, tagged
from ..support.media import make_png
from ..support.servers import CLIENT_FAL_KEY, FAL_KEY, FAL_KEY_2, RunningProxy

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def locked(sim: SimulatorThread) -> Iterator[set[str]]:
    """The keys whose fal account is locked (out of credit); emptied after the test."""
    keys: set[str] = set()
    sim.state.config.locked_keys = keys
    yield keys
    sim.state.config.locked_keys = set()


# -- a locked account ------------------------------------------------------------------------


def key_healthy(running: RunningProxy, index: int) -> bool:
    metrics = httpx.get(running.base_url + "/metrics").text
    line = f'fal_proxy_key_healthy{{key_index="{index}"}} '
    values = [row[len(line) :] for row in metrics.splitlines() if row.startswith(line)]
    assert len(values) == 1, "no key_healthy metric for this key"
    return float(values[0]) == 1.0


def assert_insufficient_quota(exc: openai.RateLimitError) -> None:
    assert exc.status_code == 429
    assert (exc.type, exc.code) == ("insufficient_quota", "insufficient_quota")
    assert exc.response.headers["x-should-retry"] == "false"
    assert "User is locked" in exc.message


@pytest.mark.parametrize(
    "extra",
    [{}, {"stream": True}, {"tools": [WEATHER]}, {"tools": [WEATHER], "stream": True}],
    ids=["prompt", "prompt-stream", "openai-route", "openai-route-stream"],
)
def test_a_locked_account_is_insufficient_quota_and_the_key_stays(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    locked: set[str],
    sim_log: Records,
    extra: dict[str, Any],
) -> None:
    running = proxy_factory(fal_key=FAL_KEY_2, key_auth_cooldown=600)
    # The SDK's own retries stay on: `x-should-retry: false` must stop them.
    client = make_client(running).with_options(max_retries=2)
    locked.add(FAL_KEY_2)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask("hi"), **extra)
    assert_insufficient_quota(caught.value)
    assert len([r for r in sim_log() if r["key"] == FAL_KEY_2]) == 1  # nobody retried
    # Not benched as a refused key: once the account is topped up, it serves at once.
    assert key_healthy(running, 0)
    locked.clear()
    client.chat.completions.create(model=MODEL, messages=ask("hi"), **extra)


def test_a_locked_key_fails_over_to_another_account_without_a_bench(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    locked: set[str],
    sim_log: Records,
) -> None:
    running = proxy_factory(fal_key=f"{FAL_KEY_2},{FAL_KEY}", key_auth_cooldown=600)
    client = make_client(running)
    locked.add(FAL_KEY_2)
    for _ in range(3):
        answer = client.chat.completions.create(model=MODEL, messages=ask("hi"))
        assert answer.choices[0].message.content == "Simulated answer to: hi"
    assert key_healthy(running, 0) and key_healthy(running, 1)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_locked_pass_through_account_is_insufficient_quota(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    locked: set[str],
    stream: bool,
) -> None:
    running = proxy_factory(fal_key=None, retry_budget=0.5)
    client = make_client(running, api_key=CLIENT_FAL_KEY)
    locked.add(CLIENT_FAL_KEY)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask("mine"), stream=stream)
    assert_insufficient_quota(caught.value)
    assert "Your fal account is out of credit or locked" in caught.value.message


def test_a_locked_account_on_media_and_embeddings(
    proxy: RunningProxy, http: httpx.Client, locked: set[str]
) -> None:
    locked.add(FAL_KEY)
    for path, body in (
        ("/images/generations", {"model": "fal-ai/flux/dev", "prompt": "a cat"}),
        ("/embeddings", {"model": "openai/text-embedding-3-small", "input": "a"}),
    ):
        response = http.post(proxy.v1 + path, json=body)
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "insufficient_quota"
        assert response.headers["x-should-retry"] == "false"


# -- storage uploads -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 203, 204])
def test_a_storage_put_answered_with_any_2xx_is_an_upload(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim: SimulatorThread,
    sim_log: Records,
    status: int,
) -> None:
    big = make_png(200, 200, noise=True)  # over INLINE_FILE_BYTES below: goes to storage
    client = make_client(proxy_factory(inline_file_bytes=64 * 1024))
    sim.state.config.upload_status = status
    try:
        result = client.images.edit(
            model="fal-ai/flux-pro/kontext", image=("a.png", big), prompt="x"
        )
    finally:
        sim.state.config.upload_status = 200
    assert result.data[0].url
    assert len(sim_log("upload_put")) == 1
    (submit,) = sim_log("submit")
    assert "/_sim/files/" in submit["body"]["image_url"]


def test_a_storage_put_answered_with_an_error_fails_visibly(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim: SimulatorThread,
    sim_log: Records,
) -> None:
    big = make_png(200, 200, noise=True)
    client = make_client(proxy_factory(inline_file_bytes=64 * 1024))
    sim.state.config.upload_status = 403
    try:
        with pytest.raises(openai.APIStatusError):
            client.images.edit(model="fal-ai/flux-pro/kontext", image=("a.png", big), prompt="x")
    finally:
        sim.state.config.upload_status = 200
    assert sim_log("submit") == []


# -- OpenRouter's reasoning: effort or max_tokens ----------------------------------------------


def test_reasoning_effort_beside_a_token_budget_sends_one_budget(
    client: openai.OpenAI, sim_log: Records
) -> None:
    token, text = tagged("think")
    answer = client.chat.completions.create(
        model=MODEL,
        messages=ask(text),
        tools=[WEATHER],  # fal's OpenAI route
        tool_choice="none",
        reasoning_effort="high",
        extra_body={"reasoning": {"max_tokens": 200}},
    )
    assert answer.choices[0].message.content
    (call,) = [r for r in of(sim_log(), token) if r["path"].endswith("/chat/completions")]
    assert call["body"]["reasoning"] == {"max_tokens": 200}
    assert "reasoning_effort" not in call["body"]


def test_reasoning_effort_alone_becomes_the_effort(client: openai.OpenAI, sim_log: Records) -> None:
    token, text = tagged("think")
    client.chat.completions.create(
        model=MODEL, messages=ask(text), tools=[WEATHER], reasoning_effort="low"
    )
    (call,) = [r for r in of(sim_log(), token) if r["path"].endswith("/chat/completions")]
    assert call["body"]["reasoning"] == {"effort": "low"}


@pytest.mark.parametrize("tools", [[], [WEATHER]], ids=["prompt", "openai-route"])
def test_a_reasoning_object_with_both_budgets_is_a_400(
    client: openai.OpenAI, sim_log: Records, tools: list[Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=ask("think"),
            tools=tools or openai.NOT_GIVEN,
            extra_body={"reasoning": {"effort": "high", "max_tokens": 200}},
        )
    assert caught.value.param == "reasoning"
    assert "not both" in caught.value.message
    assert sim_log() == []


# -- X-Fal-Request-Timeout: the time a request has left ---------------------------------------


def start_timeout_of(record: dict[str, Any]) -> int:
    return int(record["headers"]["x-fal-request-timeout"])


@pytest.fixture(scope="module")
def timed(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(request_timeout=40)


@pytest.mark.parametrize(
    ("extra", "kind"),
    [({}, "submit"), ({"stream": True}, "stream"), ({"tools": [WEATHER]}, "openai")],
    ids=["queue-submit", "stream", "openai-route"],
)
def test_every_call_that_starts_work_carries_the_time_left(
    timed: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    extra: dict[str, Any],
    kind: str,
) -> None:
    token, text = tagged("hello")
    response = make_client(timed).chat.completions.create(model=MODEL, messages=ask(text), **extra)
    if extra.get("stream"):
        list(response)  # type: ignore[call-overload]
    (record,) = of(sim_log(kind), token)
    assert 35 <= start_timeout_of(record) <= 39
    # Polls read work fal already has: no start timeout on them.
    assert all("x-fal-request-timeout" not in r["headers"] for r in sim_log("result"))


def test_media_submits_carry_the_time_left(
    timed: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    make_client(timed).images.generate(model="fal-ai/flux/dev", prompt="a cat")
    (record,) = sim_log("submit")
    assert 35 <= start_timeout_of(record) <= 39


def test_a_request_that_cannot_start_in_time_is_dropped_by_fal(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim: SimulatorThread,
    sim_log: Records,
) -> None:
    client = make_client(proxy_factory(request_timeout=4))
    waits = ask('wait [[sim {"queue_ms": 60000}]]')
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=waits)
    assert caught.value.status_code == 504
    # fal's own start timeout ended it (its result: 504 marked `user`), not the proxy's.
    assert "Request timed out" in caught.value.message
    (submit,) = sim_log("submit")
    assert start_timeout_of(submit) == 3
    assert sim.state.jobs[submit["request_id"]].user_timeout
    assert sim_log("cancel") == []  # nothing left at fal to cancel
