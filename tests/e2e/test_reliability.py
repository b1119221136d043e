"""Key pool, keep-alives, idle timeouts, limits, readiness, metrics, logs and CORS."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.chat import MODEL, Records, ask
from ..support.servers import API_KEY, FAL_KEY, FAL_KEY_2, REVOKED_FAL_KEY, RunningProxy


@pytest.fixture
def rate_limited(sim: SimulatorThread) -> Iterator[set[str]]:
    """Keys the simulator answers with 429 during one test."""
    keys: set[str] = set()
    sim.state.config.rate_limited_keys = keys
    yield keys
    sim.state.config.rate_limited_keys = set()


def test_refused_key_fails_over_and_cools_down(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    http: httpx.Client,
) -> None:
    running = proxy_factory(fal_key=f"{REVOKED_FAL_KEY},{FAL_KEY}")
    client = make_client(running)
    first = client.chat.completions.create(model=MODEL, messages=ask("failover"))
    assert first.choices[0].message.content == "Simulated answer to: failover"
    assert [r["key"] for r in sim_log("submit")] == [REVOKED_FAL_KEY, FAL_KEY]
    client.chat.completions.create(model=MODEL, messages=ask("again"), stream=True).close()
    # The refused key is cooling down: the next call goes straight to the good one.
    assert [r["key"] for r in sim_log("stream")] == [FAL_KEY]
    metrics = http.get(running.base_url + "/metrics").text
    assert 'fal_proxy_key_healthy{key_index="0"} 0.0' in metrics
    assert 'fal_proxy_key_healthy{key_index="1"} 1.0' in metrics


def test_rate_limited_key_fails_over(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    rate_limited: set[str],
) -> None:
    running = proxy_factory(fal_key=f"{FAL_KEY},{FAL_KEY_2}")
    rate_limited.add(FAL_KEY)
    stream = make_client(running).chat.completions.create(
        model=MODEL, messages=ask("limited"), stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream).endswith("limited")
    assert [r["key"] for r in sim_log("stream")] == [FAL_KEY, FAL_KEY_2]


def test_every_key_rate_limited_gives_429_with_retry_after(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    rate_limited: set[str],
) -> None:
    running = proxy_factory(retry_budget=0.3, key_rate_limit_cooldown=5, max_queue_wait=0.2)
    rate_limited.add(FAL_KEY)
    with pytest.raises(openai.RateLimitError) as caught:
        make_client(running).chat.completions.create(model=MODEL, messages=ask("x"))
    assert int(caught.value.response.headers["retry-after"]) >= 1


async def test_busy_keys_make_requests_wait_then_429(
    proxy_factory: Callable[..., RunningProxy],
    make_async_client: Callable[..., openai.AsyncOpenAI],
) -> None:
    running = proxy_factory(fal_key_concurrency=1, max_queue_wait=0.4)
    client = make_async_client(running)
    slow = ask('slow [[sim {"events": 4, "interval_ms": 250}]]')

    async def hold_key() -> str:
        stream = await client.chat.completions.create(model=MODEL, messages=slow, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    holder = asyncio.create_task(hold_key())
    await asyncio.sleep(0.15)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=MODEL, messages=ask("second"))
    assert time.monotonic() - started >= 0.35  # it waited MAX_QUEUE_WAIT first
    assert caught.value.response.headers["retry-after"]
    assert (await holder).endswith("slow")


async def test_waiting_request_proceeds_when_a_key_frees(
    proxy_factory: Callable[..., RunningProxy],
    make_async_client: Callable[..., openai.AsyncOpenAI],
) -> None:
    running = proxy_factory(fal_key_concurrency=1, max_queue_wait=5)
    client = make_async_client(running)
    slow = ask('slow [[sim {"events": 3, "interval_ms": 200}]]')

    async def first() -> None:
        stream = await client.chat.completions.create(model=MODEL, messages=slow, stream=True)
        async for _ in stream:
            pass

    holder = asyncio.create_task(first())
    await asyncio.sleep(0.1)
    started = time.monotonic()
    reply = await client.chat.completions.create(model=MODEL, messages=ask("patient"))
    assert reply.choices[0].message.content == "Simulated answer to: patient"
    assert time.monotonic() - started >= 0.3
    await holder


def test_keepalive_comments_while_fal_is_silent(
    proxy_factory: Callable[..., RunningProxy],
    http: httpx.Client,
    make_client: Callable[..., openai.OpenAI],
) -> None:
    running = proxy_factory(keepalive_interval=0.15)
    messages = ask('quiet [[sim {"events": 2, "interval_ms": 500}]]')
    body = {"model": MODEL, "messages": messages, "stream": True}
    raw = http.post(running.v1 + "/chat/completions", json=body).text
    assert ": keep-alive\n\n" in raw
    assert raw.endswith("data: [DONE]\n\n")
    stream = make_client(running).chat.completions.create(
        model=MODEL, messages=messages, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream).endswith("quiet")


def test_idle_timeout_mid_stream_is_an_error_event(
    proxy_factory: Callable[..., RunningProxy], make_client: Callable[..., openai.OpenAI]
) -> None:
    running = proxy_factory(idle_timeout=0.3)
    messages = ask('gappy [[sim {"events": 3, "interval_ms": 900}]]')
    stream = make_client(running).chat.completions.create(
        model=MODEL, messages=messages, stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert caught.value.code == "upstream_timeout"
    assert "idle" in caught.value.message


def test_body_and_message_limits(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(max_body_bytes=2000, max_messages=3)
    url = running.v1 + "/chat/completions"
    big = {"model": MODEL, "messages": ask("x" * 3000)}
    response = http.post(url, json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        data = json.dumps(big).encode()
        for i in range(0, len(data), 500):
            yield data[i : i + 500]

    json_type = {"content-type": "application/json"}
    assert http.post(url, content=chunks(), headers=json_type).status_code == 413
    many = {"model": MODEL, "messages": ask("a") * 4}
    response = http.post(url, json=many)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_rate_limit_per_client_key(
    proxy_factory: Callable[..., RunningProxy], make_client: Callable[..., openai.OpenAI]
) -> None:
    running = proxy_factory(api_key=API_KEY, rate_limit_rpm=3)
    client = make_client(running, api_key=API_KEY)
    for i in range(3):
        client.chat.completions.create(model=MODEL, messages=ask(f"r{i}"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask("one too many"))
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert caught.value.code == "rate_limit_exceeded"


async def test_concurrency_limit_per_client(
    proxy_factory: Callable[..., RunningProxy],
    make_async_client: Callable[..., openai.AsyncOpenAI],
) -> None:
    running = proxy_factory(max_concurrent_per_client=1)
    client = make_async_client(running)
    stream = await client.chat.completions.create(
        model=MODEL, messages=ask('hold [[sim {"events": 2, "interval_ms": 300}]]'), stream=True
    )
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=MODEL, messages=ask("parallel"))
    async for _ in stream:
        pass
    reply = await client.chat.completions.create(model=MODEL, messages=ask("after"))
    assert reply.choices[0].message.content == "Simulated answer to: after"


def test_draining_flag_turns_readiness_and_new_requests_to_503(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory()
    assert http.get(running.base_url + "/readyz").status_code == 200
    running.state.draining = True
    try:
        assert http.get(running.base_url + "/readyz").status_code == 503
        response = http.post(
            running.v1 + "/chat/completions", json={"model": MODEL, "messages": ask("x")}
        )
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "server_error"
        assert http.get(running.base_url + "/healthz").status_code == 200
    finally:
        running.state.draining = False


def test_metrics_need_no_key_and_count_requests(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    http: httpx.Client,
) -> None:
    running = proxy_factory(api_key=API_KEY)
    client = make_client(running, api_key=API_KEY)
    client.chat.completions.create(model=MODEL, messages=ask("m1"))
    list(client.chat.completions.create(model=MODEL, messages=ask("m2"), stream=True))
    client.chat.completions.create(model="some/unknown-model-123", messages=ask("m3"))
    response = http.get(running.base_url + "/metrics")
    assert response.status_code == 200
    text = response.text
    labels = 'model="google/gemini-2.5-flash",route="/v1/chat/completions",status="200"'
    assert f"fal_proxy_requests_total{{{labels}}} 2.0" in text
    assert 'model="other"' in text  # free-form ids do not become labels
    assert "some/unknown-model-123" not in text
    assert "fal_proxy_time_to_first_token_seconds_count 1.0" in text
    assert "fal_proxy_streams_in_flight 0.0" in text
    assert 'fal_proxy_key_in_flight{key_index="0"} 0.0' in text


def test_upstream_errors_and_retries_are_counted(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    http: httpx.Client,
) -> None:
    running = proxy_factory(retry_budget=3)
    tag = f"retry-metric-{time.monotonic_ns()}"
    directive = {"status": 503, "ingress": True, "fail_times": 1, "tag": tag}
    make_client(running).chat.completions.create(
        model=MODEL, messages=ask(f"count [[sim {json.dumps(directive)}]]")
    )
    text = http.get(running.base_url + "/metrics").text
    assert "fal_proxy_upstream_retries_total 1.0" in text
    assert 'fal_proxy_upstream_errors_total{type="http_503"} 1.0' in text


def test_one_json_log_line_per_request_without_prompts(
    client: openai.OpenAI, captured_logs: Any
) -> None:
    secret_prompt = f"confidential-{time.monotonic_ns()}"
    client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=ask(secret_prompt),
        extra_headers={"X-Request-ID": secret_prompt[-12:]},
    )
    lines = [json.loads(line) for line in captured_logs.lines if secret_prompt[-12:] in line]
    (entry,) = [e for e in lines if e.get("msg") == "request"]
    assert entry["status"] == 200 and entry["path"] == "/v1/chat/completions"
    assert entry["model"] == MODEL and entry["fal_request_id"]
    assert not any(secret_prompt in line for line in captured_logs.lines)


def test_log_prompts_opt_in(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    captured_logs: Any,
) -> None:
    running = proxy_factory(log_prompts=True)
    marker = f"loggable-{time.monotonic_ns()}"
    make_client(running).chat.completions.create(model=MODEL, messages=ask(marker))
    assert any(marker in line for line in captured_logs.lines)


def test_cors_is_off_by_default_and_on_when_configured(
    proxy: RunningProxy, proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os",
    }
    closed = http.options(proxy.v1 + "/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    running = proxy_factory(cors_origins="https://app.example")
    opened = http.options(running.v1 + "/chat/completions", headers=preflight)
    assert opened.status_code == 200
    assert opened.headers["access-control-allow-origin"] == "https://app.example"
    other = http.options(
        running.v1 + "/chat/completions", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"
