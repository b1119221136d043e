"""What a hostile or careless client cannot do: huge or absurd bodies, out-of-range numbers,
log flooding, cross-site requests, slow or oversized heads, clients that stop reading."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..conftest import CapturedLogs
from ..support.chat import MODEL, Records
from ..support.servers import RunningProxy

JSON = {"content-type": "application/json"}


def chat_url(running: RunningProxy) -> str:
    return running.base_url + "/v1/chat/completions"


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def body(**fields: Any) -> bytes:
    """A chat body; json.dumps, as orjson cannot write integers beyond 64 bits."""
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **fields}
    return json.dumps(payload).encode()


# -- item 7: every number bounded ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": 2**64}, "max_tokens"),
        ({"max_completion_tokens": 2**70}, "max_completion_tokens"),
        ({"seed": 2**64}, "seed"),
        ({"seed": -(2**64)}, "seed"),
        ({"n": 2**64}, "n"),
        ({"top_logprobs": 2**64}, "top_logprobs"),
        ({"reasoning": {"max_tokens": 2**64}}, "reasoning.max_tokens"),
        ({"logit_bias": {"50256": 2**64}}, "logit_bias.50256"),
    ],
)
def test_huge_numbers_are_400_naming_the_param(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records, fields: dict[str, Any], param: str
) -> None:
    error = error_of(http.post(chat_url(proxy), content=body(**fields), headers=JSON), 400)
    assert error["param"] == param
    assert sim_log() == []


def test_infinite_temperature_is_400(proxy: RunningProxy, http: httpx.Client) -> None:
    raw = body().replace(b'"model"', b'"temperature": 1e400, "model"')
    assert error_of(http.post(chat_url(proxy), content=raw, headers=JSON), 400)["param"] == (
        "temperature"
    )


# -- items 2 and 4: lists, strings, model ids ---------------------------------------------


def test_model_id_over_the_cap_is_400_and_never_floods_the_log(
    proxy: RunningProxy, http: httpx.Client, captured_logs: CapturedLogs, sim_log: Records
) -> None:
    model = "x/" + "m" * 1_000_000
    before = len(captured_logs.lines)
    raw = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    error = error_of(http.post(chat_url(proxy), content=raw, headers=JSON), 400)
    assert error["param"] == "model"
    assert sim_log() == []
    new = captured_logs.lines[before:]
    assert new and max(len(line) for line in new) < 4000


def test_log_fields_are_clipped_whatever_the_client_sends(
    proxy: RunningProxy, http: httpx.Client, captured_logs: CapturedLogs
) -> None:
    before = len(captured_logs.lines)
    http.get(proxy.base_url + "/v1/" + "p" * 50_000, headers={"x-request-id": "r" * 50_000})
    new = captured_logs.lines[before:]
    assert new and max(len(line) for line in new) < 4000


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stop": ["s"] * 5}, "stop"),
        ({"stop": ["s" * 5000]}, "stop[0]"),
        ({"tools": [{"type": "function"}] * 200}, "tools"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * 1001}]},
            "messages[0].content",
        ),
        ({"messages": [{"role": "user", "content": "x"}] * 1001}, "messages"),
    ],
    ids=["stop", "stop-length", "tools", "content-parts", "messages"],
)
def test_list_and_string_limits_are_400_naming_the_param(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records, fields: dict[str, Any], param: str
) -> None:
    error = error_of(http.post(chat_url(proxy), content=body(**fields), headers=JSON), 400)
    assert error["param"] == param
    assert sim_log() == []


HUGE_BODIES = {
    "messages": b'{"model":"m","messages":['
    + b",".join([b'{"role":"user","content":"x"}'] * 650_000)
    + b"]}",
    "content-parts": b'{"model":"m","messages":[{"role":"user","content":['
    + b",".join([b'{"type":"text","text":"x"}'] * 750_000)
    + b"]}]}",
    "unknown-field": b'{"model":"m","messages":[{"role":"user","content":"x"}],"junk":['
    + b",".join([b"1"] * 9_000_000)
    + b"]}",
}


@pytest.mark.parametrize("kind", sorted(HUGE_BODIES))
async def test_a_20_mib_body_of_tiny_items_is_refused_and_the_loop_stays_responsive(
    proxy_factory: Callable[..., RunningProxy], kind: str
) -> None:
    running = proxy_factory(max_body_bytes=21 * 1024 * 1024)
    raw = HUGE_BODIES[kind]
    async with httpx.AsyncClient(base_url=running.base_url, timeout=60) as client:
        await client.get("/healthz")
        slowest = 0.0

        async def probe() -> None:
            nonlocal slowest
            while True:
                started = time.perf_counter()
                await client.get("/healthz")
                slowest = max(slowest, time.perf_counter() - started)
                await asyncio.sleep(0.01)

        prober = asyncio.ensure_future(probe())
        try:
            response = await client.post("/v1/chat/completions", content=raw, headers=JSON)
        finally:
            prober.cancel()
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "request_too_complex"
    # Parsed, the body takes seconds and a gigabyte; the pre-scan takes tens of ms (a 2-core
    # machine shared with other work gets a margin).
    assert slowest < 0.5, slowest


def test_many_commas_inside_strings_are_fine(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(max_body_bytes=21 * 1024 * 1024)
    text = 'a,b,\\"c\\",d\\\\,e\n' * 200_000  # a CSV pasted into a prompt, with escapes
    raw = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": text}]})
    response = http.post(chat_url(running), content=raw, headers=JSON)
    assert response.status_code == 200, response.text[:300]
