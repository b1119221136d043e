"""End-to-end tests of the fal simulator over real HTTP (uvicorn in a background thread)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from fal_openai_proxy.simulator import SimulatorConfig, create_simulator_app
from fal_openai_proxy.simulator.app import key_label
from fal_openai_proxy.simulator.server import SimulatorThread, start_simulator_thread

GOOD = "good-key"
ROUTER = "openrouter/router"
ANY = "fal-ai/any-llm"
VISION = "fal-ai/any-llm/vision"


def _config() -> SimulatorConfig:
    return SimulatorConfig(
        keys={GOOD, "other-key", "forbidden", "limited"},
        forbidden_keys={"forbidden"},
        rate_limited_keys={"limited"},
        events=4,
    )


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    running = start_simulator_thread(_config())
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _reset(sim: SimulatorThread) -> None:
    sim.state.config = _config()
    sim.state.clear()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


def auth(key: str = GOOD) -> dict[str, str]:
    return {"Authorization": f"Key {key}"}


def directive(**fields: Any) -> str:
    return f"[[sim {json.dumps(fields)}]]"


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, key: str | None = GOOD
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = auth(key) if key is not None else {}
    async with http.request(method, url, json=body, headers=headers) as resp:
        text = await resp.text()
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        return resp.status, data, resp


def parse_sse(text: str) -> list[tuple[str | None, dict[str, Any]]]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        events.append((name, json.loads(data)))
    return events


async def stream(
    http: aiohttp.ClientSession, sim: SimulatorThread, app: str, body: dict[str, Any]
) -> tuple[aiohttp.ClientResponse, list[dict[str, Any]]]:
    async with http.post(f"{sim.run_url}/{app}/stream", json=body, headers=auth()) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    events = parse_sse(text)
    assert all(name == "event" for name, _ in events)
    return resp, [data for _, data in events]


async def wait_for_log(sim: SimulatorThread, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for entry in list(sim.state.log):
            if entry["kind"] == kind:
                return entry
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind!r} record in {sim.state.log}")


# --- auth, routing, validation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "status"),
    [(None, 401), ("", 401), ("unknown-key", 401), ("forbidden", 403), ("limited", 429)],
)
async def test_auth_errors(
    http: aiohttp.ClientSession, sim: SimulatorThread, key: str | None, status: int
) -> None:
    headers = {} if key is None else {"Authorization": f"Key {key}"}
    body = {"prompt": "hi", "model": "m"}
    async with http.post(f"{sim.run_url}/{ROUTER}", json=body, headers=headers) as resp:
        data = await resp.json()
        assert resp.status == status
        assert resp.headers["x-fal-request-id"]
    assert isinstance(data["detail"], str)
    if key:
        assert key not in json.dumps(data)


async def test_malformed_authorization(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    headers = {"Authorization": f"Bearer {GOOD}"}
    async with http.post(f"{sim.run_url}/{ROUTER}", json={}, headers=headers) as resp:
        assert resp.status == 401
    assert sim.state.log[-1]["key"] is None
    assert "authorization" not in sim.state.log[-1]["headers"]


async def test_any_key_accepted_when_keys_is_none(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    sim.state.config.keys = None
    status, _, _ = await call(http, "POST", f"{sim.run_url}/{ANY}", {"prompt": "x"}, key="whatever")
    assert status == 200


async def test_unknown_app(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    status, data, _ = await call(http, "POST", f"{sim.run_url}/fal-ai/nope", {"prompt": "x"})
    assert status == 404
    assert "not found" in data["detail"]


@pytest.mark.parametrize(
    ("app", "body", "loc", "kind"),
    [
        (ROUTER, {"model": "m"}, ["body", "prompt"], "missing"),
        (ROUTER, {"prompt": "x"}, ["body", "model"], "missing"),
        (ROUTER, {"prompt": 3, "model": "m"}, ["body", "prompt"], "string_type"),
        (ROUTER, {"prompt": "x", "model": "m", "temperature": 3}, ["body", "temperature"], None),
        (ROUTER, {"prompt": "x", "model": "m", "max_tokens": 0}, ["body", "max_tokens"], None),
        (ROUTER, {"prompt": "x", "model": "m", "reasoning": "y"}, ["body", "reasoning"], None),
        (ANY, {"prompt": "x", "model": "not/a-model"}, ["body", "model"], "enum"),
        ("openrouter/router/vision", {"prompt": "x", "model": "m"}, ["body", "image_urls"], None),
        ("openrouter/router/vision", {"prompt": "x", "model": "m", "image_urls": []}, None, None),
        (ROUTER, ["not", "an", "object"], ["body"], None),
    ],
)
async def test_validation_422(
    http: aiohttp.ClientSession,
    sim: SimulatorThread,
    app: str,
    body: Any,
    loc: list[Any] | None,
    kind: str | None,
) -> None:
    status, data, _ = await call(http, "POST", f"{sim.run_url}/{app}", body)
    assert status == 422
    item = data["detail"][0]
    assert isinstance(item["msg"], str)
    if loc is not None:
        assert item["loc"] == loc
    if kind is not None:
        assert item["type"] == kind


async def test_invalid_json_is_422(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    async with http.post(f"{sim.run_url}/{ROUTER}", data=b"{nope", headers=auth()) as resp:
        assert resp.status == 422


# --- direct run and stream ------------------------------------------------------------------


async def test_run_router_output_usage_and_log(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    prompt = "System stuff\n\nHuman: first\n\nAssistant: ok\n\nHuman:  what is up?  "
    body = {"prompt": prompt, "system_prompt": "be brief", "model": "a/b"}
    status, data, resp = await call(http, "POST", f"{sim.run_url}/{ROUTER}", body)
    assert status == 200
    assert data["output"] == "Simulated answer to: what is up?"
    assert data["partial"] is False
    assert data["error"] is None
    assert "reasoning" not in data
    words = len(prompt.split()) + 2
    assert data["usage"]["prompt_tokens"] == words
    assert data["usage"]["completion_tokens"] == 6
    assert data["usage"]["total_tokens"] == words + 6
    assert isinstance(data["usage"]["cost"], float)
    (entry,) = sim.state.log
    assert entry["kind"] == "run"
    assert entry["app"] == ROUTER
    assert entry["key"] == GOOD
    assert entry["body"] == body
    assert entry["request_id"] == resp.headers["x-fal-request-id"]
    assert "authorization" not in entry["headers"]
    assert entry["headers"]["content-type"] == "application/json"


async def test_run_any_llm_has_no_usage_and_applies_limits(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    long = "word " * 100
    status, data, _ = await call(http, "POST", f"{sim.run_url}/{ANY}", {"prompt": long})
    assert status == 200
    assert "usage" not in data
    assert data["output"] == "Simulated answer to: " + long.strip()[:200]
    body = {"prompt": "one two three four", "max_tokens": 5, "reasoning": True}
    _, data, _ = await call(http, "POST", f"{sim.run_url}/{ANY}/enterprise", body)
    assert data["output"] == "Simulated answer to: one two"
    assert data["reasoning"] == "Thinking about: one two three four"


async def test_run_vision_counts_images(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    body = {"prompt": "look", "model": "m", "image_urls": ["http://a/1.png", "http://a/2.png"]}
    _, data, _ = await call(http, "POST", f"{sim.run_url}/openrouter/router/vision", body)
    assert data["output"] == "Simulated answer to: look [images: 2]"
    _, data, _ = await call(http, "POST", f"{sim.run_url}/{ANY}", {**body, "model": None})
    assert data["output"] == "Simulated answer to: look"  # non-vision apps ignore images


async def test_stream_framing_cumulative_and_final_usage(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    body = {"prompt": "Human: a b c d e f g h", "model": "m"}
    resp, events = await stream(http, sim, ROUTER, body)
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-fal-request-id"]
    *partials, final = events
    assert len(partials) == 4
    assert all(e["partial"] is True and e["error"] is None for e in partials)
    outputs = [e["output"] for e in partials]
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(outputs))
    assert final["partial"] is False
    assert final["output"] == outputs[-1] == "Simulated answer to: a b c d e f g h"
    assert final["usage"]["completion_tokens"] == 11
    assert all("usage" not in e for e in partials)
    assert sim.state.log[-1]["kind"] == "stream"


async def test_stream_any_llm_reasoning_first(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    body = {"prompt": "Human: x y z" + directive(events=2), "reasoning": True}
    _, events = await stream(http, sim, VISION, body)
    assert [e["output"] for e in events[:2]] == ["", ""]
    assert [e["reasoning"] for e in events[:2]] == ["Thinking about: x", "Thinking about: x y z"]
    assert [e["output"] for e in events[2:4]] == [
        "Simulated answer to:",
        "Simulated answer to: x y z",
    ]
    assert events[3]["reasoning"] == "Thinking about: x y z"
    assert events[-1]["partial"] is False
    assert "usage" not in events[-1]


async def test_stream_single_word_has_one_partial(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    body = {"prompt": "x" + directive(text="hello", events=10)}
    _, events = await stream(http, sim, ANY, body)
    assert [(e["output"], e["partial"]) for e in events] == [("hello", True), ("hello", False)]


# --- queue ----------------------------------------------------------------------------------


async def test_queue_submit_status_result_drop_subpath(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    body = {"prompt": "Human: pic?", "image_urls": ["http://x/y.png"]}
    status, sub, resp = await call(http, "POST", f"{sim.queue_url}/{VISION}", body)
    assert status == 200
    rid = sub["request_id"]
    assert resp.headers["x-fal-request-id"] == rid
    base = f"{sim.queue_url}/fal-ai/any-llm/requests/{rid}"
    assert sub["response_url"] == base
    assert sub["status_url"] == base + "/status"
    assert sub["cancel_url"] == base + "/cancel"
    assert (sub["status"], sub["queue_position"]) == ("IN_QUEUE", 0)
    for logs in ("1", "0", "true", "false"):
        status, st, resp = await call(http, "GET", f"{sub['status_url']}?logs={logs}")
        assert status == 200
        assert resp.headers["x-fal-request-id"] == rid
        assert st["status"] == "COMPLETED"
        assert "error" not in st
        assert "inference_time" in st["metrics"]
    status, _, _ = await call(http, "GET", f"{sub['status_url']}?logs=maybe")
    assert status == 422
    status, result, _ = await call(http, "GET", sub["response_url"])
    assert status == 200
    assert result["output"] == "Simulated answer to: pic? [images: 1]"
    kinds = [e["kind"] for e in sim.state.log]
    assert kinds == ["submit", "status", "status", "status", "status", "status", "result"]
    assert all(e["request_id"] == rid for e in sim.state.log)


async def test_queue_status_stream_and_in_progress(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    body = {"prompt": "q" + directive(queue_ms=40, latency_ms=80), "model": "m"}
    _, sub, _ = await call(http, "POST", f"{sim.queue_url}/{ROUTER}", body)
    status, data, _ = await call(http, "GET", sub["response_url"])
    assert (status, data) == (400, {"detail": "Request is still in progress"})
    async with http.get(sub["status_url"] + "/stream", headers=auth()) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [data for _, data in parse_sse(await resp.text())]
    assert [e["status"] for e in events] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert events[0]["queue_position"] == 0
    assert events[1]["logs"] is None
    assert events[2]["metrics"]["inference_time"] == pytest.approx(0.08, abs=0.01)
    _, result, _ = await call(http, "GET", sub["response_url"])
    assert result["usage"]["completion_tokens"] == 4


async def test_queue_cancel(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    _, sub, _ = await call(http, "POST", f"{sim.queue_url}/{ANY}", {"prompt": directive(hang=True)})
    _, st, _ = await call(http, "GET", sub["status_url"])
    assert st == {"status": "IN_PROGRESS", "logs": None}
    stream_task = asyncio.create_task(call(http, "GET", sub["status_url"] + "/stream"))
    await asyncio.sleep(0.05)
    status, data, _ = await call(http, "PUT", sub["cancel_url"])
    assert (status, data) == (202, {"status": "CANCELLATION_REQUESTED"})
    _, streamed, _ = await stream_task
    assert [e["status"] for _, e in parse_sse(streamed)] == ["IN_PROGRESS", "COMPLETED"]
    _, st, _ = await call(http, "GET", sub["status_url"])
    assert st["status"] == "COMPLETED"
    assert st["error_type"] == "client_cancelled"
    status, data, _ = await call(http, "PUT", sub["cancel_url"])
    assert (status, data) == (400, {"status": "ALREADY_COMPLETED"})
    status, data, _ = await call(http, "GET", sub["response_url"])
    assert data["error_type"] == "client_cancelled"
    assert await wait_for_log(sim, "cancelled") == {
        "t": pytest.approx(time.monotonic(), abs=5),
        "kind": "cancelled",
        "request_id": sub["request_id"],
    }


async def test_queue_unknown_request_and_auth(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    url = f"{sim.queue_url}/fal-ai/any-llm/requests/nope"
    for method, suffix in (("GET", "/status"), ("GET", ""), ("PUT", "/cancel")):
        status, _, _ = await call(http, method, url + suffix)
        assert status == 404
    status, _, _ = await call(http, "GET", url + "/status", key=None)
    assert status == 401
    _, sub, _ = await call(http, "POST", f"{sim.queue_url}/{ANY}", {"prompt": "x"})
    wrong_app = sub["status_url"].replace("fal-ai/any-llm", "openrouter/router")
    status, _, _ = await call(http, "GET", wrong_app)
    assert status == 404


async def test_queue_job_failure(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    for d in (directive(error_at=0, error_message="boom"), directive(completed_error="boom")):
        _, sub, _ = await call(http, "POST", f"{sim.queue_url}/{ANY}", {"prompt": d})
        _, st, _ = await call(http, "GET", sub["status_url"])
        assert st["status"] == "COMPLETED"
        assert (st["error"], st["error_type"]) == ("boom", "runner_server_error")
        status, data, resp = await call(http, "GET", sub["response_url"])
        assert status == 500
        assert data == {"detail": "boom", "error_type": "runner_server_error"}
        assert resp.headers["x-fal-error-type"] == "runner_server_error"


# --- directives -----------------------------------------------------------------------------


async def test_text_reasoning_text_and_usage_override(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    prompt = "ignored" + directive(text="Exact out", usage=True)
    system = directive(reasoning_text="Deep thought", text="overridden")
    body = {"prompt": prompt, "system_prompt": system}
    _, data, _ = await call(http, "POST", f"{sim.run_url}/{ANY}", body)
    assert data["output"] == "Exact out"
    assert data["reasoning"] == "Deep thought"
    assert data["usage"]["completion_tokens"] == 4
    body = {"prompt": "x" + directive(usage=False), "model": "m"}
    _, data, _ = await call(http, "POST", f"{sim.run_url}/{ROUTER}", body)
    assert "usage" not in data


async def test_directive_is_removed_from_output(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    body = {"prompt": "Human: before " + directive(events=2) + " after", "model": "m"}
    _, data, _ = await call(http, "POST", f"{sim.run_url}/{ROUTER}", body)
    assert data["output"] == "Simulated answer to: before  after"


async def test_scripted_status_body_headers(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    d = directive(
        status=504,
        body={"detail": "Request timed out", "error_type": "request_timeout"},
        headers={"X-Fal-Retryable": False, "Retry-After": "1"},
    )
    for url in (f"{sim.run_url}/{ANY}", f"{sim.run_url}/{ANY}/stream", f"{sim.queue_url}/{ANY}"):
        status, data, resp = await call(http, "POST", url, {"prompt": d})
        assert status == 504
        assert data["error_type"] == "request_timeout"
        assert resp.headers["x-fal-retryable"] == "false"
        assert resp.headers["retry-after"] == "1"
        assert resp.headers["x-fal-request-id"]
    status, data, _ = await call(
        http, "POST", f"{sim.run_url}/{ANY}", {"prompt": directive(status=500)}
    )
    assert (status, data) == (500, {"detail": "Simulated error"})


async def test_ingress_error(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    body = {"prompt": directive(status=502, ingress=True)}
    status, text, resp = await call(http, "POST", f"{sim.run_url}/{ANY}", body)
    assert status == 502
    assert "x-fal-request-id" not in resp.headers
    assert resp.headers["content-type"].startswith("text/html")
    assert "nginx" in text


async def test_fail_times_per_tag(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    body = {"prompt": directive(status=429, fail_times=2, tag="t1")}
    results = [(await call(http, "POST", f"{sim.run_url}/{ANY}", body))[0] for _ in range(3)]
    assert results == [429, 429, 200]
    other = {"prompt": directive(status=429, fail_times=1, tag="t2")}
    assert (await call(http, "POST", f"{sim.queue_url}/{ANY}", other))[0] == 429
    assert (await call(http, "POST", f"{sim.queue_url}/{ANY}", other))[0] == 200
    assert sim.state.attempts == {"t1": 3, "t2": 2}
    async with http.delete(f"{sim.base_url}/_sim/log") as resp:
        assert resp.status == 200
    assert sim.state.attempts == {}
    assert sim.state.log == []
    assert (await call(http, "POST", f"{sim.run_url}/{ANY}", body))[0] == 429


async def test_stream_error_at(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    body = {"prompt": "a b c d e f" + directive(error_at=2, error_message="kaput")}
    _, events = await stream(http, sim, ANY, body)
    assert len(events) == 3
    assert events[1]["error"] is None
    assert events[2]["error"] == "kaput"
    assert events[2]["output"] == events[1]["output"]


async def test_run_error_at(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    body = {"prompt": "x" + directive(error_at=1, error_message="bad")}
    status, data, _ = await call(http, "POST", f"{sim.run_url}/{ANY}", body)
    assert (status, data["detail"]) == (500, "bad")


async def test_stream_drop_at(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    body = {"prompt": "a b c d e f" + directive(drop_at=2)}
    url = f"{sim.run_url}/{ANY}/stream"
    async with http.post(url, json=body, headers=auth()) as resp:
        assert resp.status == 200
        received: list[bytes] = []

        async def drain() -> None:
            async for chunk in resp.content.iter_any():
                received.append(chunk)

        with pytest.raises(aiohttp.ClientPayloadError):
            await drain()
    assert b"".join(received).count(b"data: ") == 2


async def test_run_drop_at(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    body = {"prompt": "x" + directive(drop_at=0)}
    async with http.post(f"{sim.run_url}/{ANY}", json=body, headers=auth()) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_stream_rewrite_at(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    body = {"prompt": "a b c d e f" + directive(rewrite_at=2)}
    _, events = await stream(http, sim, ANY, body)
    outputs = [e["output"] for e in events]
    assert outputs[1].startswith(outputs[0])
    assert not outputs[2].startswith(outputs[1])
    assert outputs[3].startswith(outputs[2])
    assert outputs[-1] == outputs[3]


async def test_latency_and_interval(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    body = {"prompt": "a b c" + directive(latency_ms=60, interval_ms=20, events=3)}
    start = time.monotonic()
    async with http.post(f"{sim.run_url}/{ANY}/stream", json=body, headers=auth()) as resp:
        headers_at = time.monotonic() - start
        await resp.read()
    total = time.monotonic() - start
    assert headers_at >= 0.055
    assert total >= 0.055 + 3 * 0.02


async def test_stream_hang_after_headers_and_disconnect(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    body = {"prompt": directive(hang=True)}
    resp = await http.post(f"{sim.run_url}/{ANY}/stream", json=body, headers=auth())
    assert resp.status == 200
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(resp.content.readany(), 0.1)
    async with http.get(f"{sim.base_url}/_sim/stats") as stats:
        assert await stats.json() == {"open_streams": 1, "in_flight": 1}
    resp.close()
    record = await wait_for_log(sim, "disconnect")
    assert record["path"] == f"/run/{ANY}/stream"
    assert record["request_id"] == resp.headers["x-fal-request-id"]
    await asyncio.sleep(0.02)
    assert sim.state.stats() == {"open_streams": 0, "in_flight": 0}


@pytest.mark.parametrize(
    ("path", "hang"),
    [("/stream", "before_headers"), ("", True)],
)
async def test_hang_before_headers(
    http: aiohttp.ClientSession, sim: SimulatorThread, path: str, hang: Any
) -> None:
    body = {"prompt": directive(hang=hang)}
    request = http.post(f"{sim.run_url}/{ANY}{path}", json=body, headers=auth())
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(request, 0.1)
    await wait_for_log(sim, "disconnect")


async def test_stream_client_leaves_mid_stream(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    body = {"prompt": "a b c d" + directive(interval_ms=50)}
    async with http.post(f"{sim.run_url}/{ANY}/stream", json=body, headers=auth()) as resp:
        await resp.content.readuntil(b"\n\n")
        resp.close()
    await wait_for_log(sim, "disconnect")


async def test_key_concurrency(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    async with http.patch(f"{sim.base_url}/_sim/config", json={"key_concurrency": 1}) as resp:
        assert (await resp.json())["key_concurrency"] == 1
    slow = {"prompt": "x" + directive(latency_ms=100)}
    first = asyncio.create_task(call(http, "POST", f"{sim.run_url}/{ANY}", slow))
    await asyncio.sleep(0.03)
    status, _, _ = await call(http, "POST", f"{sim.run_url}/{ANY}", {"prompt": "y"})
    assert status == 429
    other, _, _ = await call(http, "POST", f"{sim.run_url}/{ANY}", {"prompt": "y"}, key="other-key")
    assert other == 200
    assert (await first)[0] == 200
    status, _, _ = await call(http, "POST", f"{sim.run_url}/{ANY}", {"prompt": "y"})
    assert status == 200


async def test_key_concurrency_counts_peak_and_refusals(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    sim.state.config.key_concurrency = 2
    slow = {"prompt": "x" + directive(latency_ms=150)}
    calls = [call(http, "POST", f"{sim.run_url}/{ANY}", slow) for _ in range(5)]
    statuses = sorted(status for status, _, _ in await asyncio.gather(*calls))
    assert statuses == [200, 200, 429, 429, 429]
    assert sim.state.key_peak[GOOD] == 3  # two running, and each refused one arriving
    assert sim.state.key_refused[GOOD] == 3


async def test_key_concurrency_queue_jobs_wait_in_queue(
    http: aiohttp.ClientSession, sim: SimulatorThread
) -> None:
    sim.state.config.key_concurrency = 2
    slow = {"prompt": "x" + directive(latency_ms=300)}
    subs = [await call(http, "POST", f"{sim.queue_url}/{ANY}", slow) for _ in range(3)]
    assert [status for status, _, _ in subs] == [200, 200, 200]  # never a 429: they wait

    async def status_of(sub: dict[str, Any]) -> str:
        _, body, _ = await call(http, "GET", sub["status_url"])
        return str(body["status"])

    assert [await status_of(sub) for _, sub, _ in subs] == ["IN_PROGRESS"] * 2 + ["IN_QUEUE"]
    # A running direct call counts against the same limit.
    status, body, _ = await call(http, "POST", f"{sim.run_url}/{ANY}", {"prompt": "y"})
    assert status == 429
    assert "detail" in body
    await asyncio.sleep(0.35)
    assert [await status_of(sub) for _, sub, _ in subs] == ["COMPLETED"] * 2 + ["IN_PROGRESS"]
    await asyncio.sleep(0.35)
    assert await status_of(subs[2][1]) == "COMPLETED"


# --- control API ----------------------------------------------------------------------------


async def test_control_endpoints(http: aiohttp.ClientSession, sim: SimulatorThread) -> None:
    async with http.get(f"{sim.base_url}/healthz") as resp:
        assert resp.status == 200
    patch = {"keys": ["new"], "latency_ms": 1, "events": 2}
    async with http.patch(f"{sim.base_url}/_sim/config", json=patch) as resp:
        assert resp.status == 200
    assert sim.state.config.keys == {"new"}
    assert sim.state.config.events == 2
    async with http.patch(f"{sim.base_url}/_sim/config", json={"bogus": 1}) as resp:
        assert resp.status == 400
    await call(http, "POST", f"{sim.run_url}/{ANY}", {"prompt": "x"}, key="new")
    async with http.get(f"{sim.base_url}/_sim/log") as resp:
        assert resp.headers["x-fal-simulator"] == "fal simulator control endpoint"
        text = await resp.text()
    log = json.loads(text)
    assert [e["kind"] for e in log] == ["run"]
    # Control endpoints carry no secrets: keys are fingerprints.
    assert log[0]["key"] == key_label("new") and log[0]["key"].startswith("sha256:")
    assert '"new"' not in text and "authorization" not in text.lower()
    async with http.get(f"{sim.base_url}/_sim/config") as resp:
        assert resp.headers["x-fal-simulator"] == "fal simulator control endpoint"
        assert (await resp.json())["keys"] == [key_label("new")]


def test_app_exposes_state() -> None:
    app = create_simulator_app(SimulatorConfig(events=3))
    assert app.simulator_state.config.events == 3
    assert app.simulator_state.log == []
