"""The seams of the structure: FalClient through a fake transport (no sockets), and the
chat service's stream loop over a fake fal stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from fal_openai_proxy.base.metrics import Metrics
from fal_openai_proxy.base.settings import Settings
from fal_openai_proxy.fal.client import FalClient
from fal_openai_proxy.fal.errors import (
    FalBrokenError,
    FalEventError,
    FalStatusError,
    FalTimeout,
    FalUnsafeURL,
)
from fal_openai_proxy.fal.retry import RESULT_RETRIES
from fal_openai_proxy.fal.timeouts import Timeouts
from fal_openai_proxy.openai.chat import parse_chat_request
from fal_openai_proxy.services.catalog import Catalog
from fal_openai_proxy.services.chat import ChatService
from fal_openai_proxy.services.pricing import CostMeter, load_price_table
from fal_openai_proxy.services.router import ModelRouter
from fal_openai_proxy.translate.response import ChunkEncoder
from fal_openai_proxy.translate.stream import StreamTranslator

from ..support.fake_transport import FakeResponse, MockTransport

TIMEOUTS = Timeouts(connect=1, first_event=1, idle=1, total=5, keepalive=10, retry_budget=0)


def fal_client(transport: MockTransport) -> FalClient:
    return FalClient(
        run_url="https://run.test",
        queue_url="https://queue.test",
        http=transport,
        pool=None,
        timeouts=TIMEOUTS,
        metrics=Metrics(),
    )


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


async def test_stream_through_a_fake_transport() -> None:
    url = "https://run.test/openrouter/router/stream"
    response = FakeResponse(
        200,
        {"content-type": "text/event-stream", "x-fal-request-id": "req-1"},
        [sse({"output": "Hel", "partial": True}), sse({"output": "Hello", "partial": False})],
    )
    transport = MockTransport.table({("POST", url): response})
    stream = await fal_client(transport).open_stream("openrouter/router", {"prompt": "hi"}, "k1")
    events = [e async for e in stream.events()]
    stream.close()
    assert [e and e["output"] for e in events] == ["Hel", "Hello"]
    assert stream.request_id == "req-1"
    method, _, headers, body = transport.sent[0]
    assert (method, headers["Authorization"], json.loads(body or b"")) == (
        "POST",
        "Key k1",
        {"prompt": "hi"},
    )
    assert response.closed


QUEUE = "https://queue.test/fal-ai/any-llm"
REQUEST = f"{QUEUE}/requests/r1"


def failed_queue(result: FakeResponse | Exception) -> MockTransport:
    """A queue request that completes with an error; its result answers `result`."""
    submitted = {
        "request_id": "r1",
        "status_url": f"{REQUEST}/status",
        "response_url": REQUEST,
        "cancel_url": f"{REQUEST}/cancel",
    }
    failed = {"status": "COMPLETED", "error": "boom", "error_type": "runner_disconnected"}
    return MockTransport.table(
        {
            ("POST", QUEUE): FakeResponse(200, {}, [orjson.dumps(submitted)]),
            ("GET", f"{REQUEST}/status/stream?logs=0"): FakeResponse(
                200, {"content-type": "text/event-stream"}, [sse(failed)]
            ),
            ("GET", REQUEST): result,
        }
    )


async def test_a_failed_queue_request_reports_its_result_status_and_detail() -> None:
    detail = [{"loc": ["body", "prompt"], "msg": "String should have at most 9 characters"}]
    transport = failed_queue(
        FakeResponse(422, {"x-fal-request-id": "r1"}, [orjson.dumps({"detail": detail})])
    )
    with pytest.raises(FalStatusError) as caught:
        await fal_client(transport).run_queued("fal-ai/any-llm", {"prompt": "x"}, "k1")
    assert (caught.value.status, caught.value.message) == (
        422,
        "prompt: String should have at most 9 characters",
    )
    assert [m for m, *_ in transport.sent].count("GET") == 2  # status stream, one result call


async def test_error_type_is_the_fallback_when_the_result_cannot_be_fetched() -> None:
    transport = failed_queue(FalBrokenError("fal closed the connection"))
    with pytest.raises(FalStatusError) as caught:
        await fal_client(transport).run_queued("fal-ai/any-llm", {"prompt": "x"}, "k1")
    assert (caught.value.status, caught.value.error_type) == (503, "runner_disconnected")
    # a lost connection is retried (RESULT_RETRIES) before falling back
    assert [u for _, u, *_ in transport.sent].count(REQUEST) == 1 + RESULT_RETRIES


def queue_with_urls(
    urls: dict[str, str], queue_url: str = "https://queue.fal.run"
) -> MockTransport:
    submitted = {"request_id": "r1", **urls}
    return MockTransport.table(
        {("POST", f"{queue_url}/fal-ai/any-llm"): FakeResponse(200, {}, [orjson.dumps(submitted)])}
    )


def on(base: str) -> dict[str, str]:
    return {"status_url": f"{base}/status", "response_url": base, "cancel_url": f"{base}/cancel"}


@pytest.mark.parametrize(
    "base",
    [
        "http://queue.fal.run/fal-ai/any-llm/requests/r1",  # a downgrade to plain http
        "https://evil.example/fal-ai/any-llm/requests/r1",  # not fal's host
        "https://queue.fal.run.evil.example/fal-ai/any-llm/requests/r1",
    ],
)
async def test_the_key_is_never_sent_to_a_url_fal_should_not_name(base: str) -> None:
    transport = queue_with_urls(on(base))
    client = FalClient(
        run_url="https://fal.run",
        queue_url="https://queue.fal.run",
        http=transport,
        pool=None,
        timeouts=TIMEOUTS,
        metrics=Metrics(),
    )
    with pytest.raises(FalUnsafeURL):
        await client.run_queued("fal-ai/any-llm", {"prompt": "x"}, "k1")
    assert [u for _, u, *_ in transport.sent] == ["https://queue.fal.run/fal-ai/any-llm"]


async def test_polls_are_retried_then_the_request_succeeds() -> None:
    submitted = {"request_id": "r1", **on(REQUEST)}
    flaky = FakeResponse(503, {}, [b"<html><center>nginx</center></html>"])
    routes: dict[tuple[str, str], FakeResponse | Exception] = {
        ("POST", QUEUE): FakeResponse(200, {}, [orjson.dumps(submitted)]),
        ("GET", f"{REQUEST}/status/stream?logs=0"): FakeResponse(404, {}, [b"{}"]),
        ("GET", f"{REQUEST}/status?logs=0"): flaky,
    }
    transport = MockTransport.table(routes)
    client = fal_client(transport)
    task = asyncio.ensure_future(client.run_queued("fal-ai/any-llm", {"prompt": "x"}, "k1"))
    await asyncio.sleep(0.05)
    assert len(transport.sent) >= 3  # submit, status stream, a failed poll
    routes[("GET", f"{REQUEST}/status?logs=0")] = FakeResponse(
        202, {}, [orjson.dumps({"status": "IN_PROGRESS"})]
    )
    await asyncio.sleep(0.3)
    routes[("GET", f"{REQUEST}/status?logs=0")] = FakeResponse(
        200, {}, [orjson.dumps({"status": "COMPLETED"})]
    )
    routes[("GET", REQUEST)] = FakeResponse(200, {}, [orjson.dumps({"output": "ok"})])
    result = await asyncio.wait_for(task, 5)
    assert result.output == {"output": "ok"}


@dataclass
class FakeStream:
    items: list[dict[str, object] | Exception | None]
    closed: bool = False

    async def events(self) -> AsyncIterator[dict[str, object] | None]:
        for item in self.items:
            await asyncio.sleep(0)
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self.closed = True


def chat_service() -> ChatService:
    """The service's stream loop alone: no fal client, nothing routed to fal's OpenAI route."""
    settings = Settings(fal_key="k")  # type: ignore[arg-type]
    catalog = Catalog("openrouter/router", None)
    meter = CostMeter(load_price_table(None))
    return ChatService(
        settings,
        None,
        catalog,
        Metrics(),
        set(),
        ModelRouter([]),
        None,
        meter,  # type: ignore[arg-type]
    )


async def run_frames(items: list[dict[str, object] | Exception | None]) -> tuple[list[Any], bool]:
    stream = FakeStream(items)
    translator = StreamTranslator(ChunkEncoder("m"), stops=[])
    frames = b"".join([f async for f in chat_service().frames(stream, translator)])
    datas = [line[6:] for line in frames.decode().split("\n") if line.startswith("data: ")]
    return [d if d == "[DONE]" else json.loads(d) for d in datas], stream.closed


async def test_stream_loop_with_a_fake_stream() -> None:
    frames, closed = await run_frames([{"output": "a"}, None, {"output": "ab", "partial": False}])
    deltas = [f["choices"][0]["delta"].get("content") for f in frames[:-1]]
    assert deltas == ["", "a", "b", None]
    assert frames[-2]["choices"][0]["finish_reason"] == "stop"
    assert frames[-1] == "[DONE]"
    assert closed


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (FalEventError("model crashed"), "upstream_error"),
        (FalTimeout("idle", 1), "upstream_timeout"),
        (FalStatusError(503, "no runners"), None),
    ],
)
async def test_stream_loop_sends_failures_in_band(failure: Exception, code: str | None) -> None:
    frames, closed = await run_frames([{"output": "a"}, failure])
    assert frames[-2]["error"]["code"] == code
    assert frames[-1] == "[DONE]"
    assert all(
        f == "[DONE]" or "error" in f or f["choices"][0]["finish_reason"] is None for f in frames
    )  # never a clean "stop" after a failure
    assert closed


def test_chat_request_parses_for_the_service() -> None:
    chat = parse_chat_request(b'{"model":"m","messages":[{"role":"user","content":"hi"}]}')
    assert chat.model == "m"
