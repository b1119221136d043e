"""Checks every Anthropic-shaped response against the anthropic SDK's own types, and
Anthropic's stream framing; plus the httpx2 transports (the SDK's HTTP library from 2.x) that
record what the anthropic SDK receives, as schema.py's do for the openai SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx2
import pydantic
from anthropic.types import Message, MessageTokensCount, ModelInfo, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse

_ADAPTERS: dict[str, pydantic.TypeAdapter[Any]] = {
    "Message": pydantic.TypeAdapter(Message),
    "RawMessageStreamEvent": pydantic.TypeAdapter(RawMessageStreamEvent),
    "ErrorResponse": pydantic.TypeAdapter(ErrorResponse),
    "MessageTokensCount": pydantic.TypeAdapter(MessageTokensCount),
    "ModelInfo": pydantic.TypeAdapter(ModelInfo),
}


def is_anthropic(path: str, request_headers: Mapping[str, str]) -> bool:
    return path.startswith("/v1/messages") or "anthropic-version" in request_headers


def errors(name: str, body: Any) -> list[str]:
    try:
        _ADAPTERS[name].validate_python(body)
    except pydantic.ValidationError as exc:
        return [f"{name}: {e['loc']}: {e['msg']}" for e in exc.errors()[:5]]
    return []


def check_anthropic(path: str, status: int, ctype: str, body: bytes, whole: bool) -> list[str]:
    if status >= 400:
        if "application/json" not in ctype:
            return [f"error without JSON content type: {ctype}"]
        return errors("ErrorResponse", json.loads(body))
    if path == "/v1/messages":
        if ctype.startswith("text/event-stream"):
            return check_message_stream(body, whole)
        parsed = json.loads(body)
        problems = errors("Message", parsed)
        if parsed.get("stop_reason") is None:
            problems.append("a message without stop_reason")
        return problems
    if path == "/v1/messages/count_tokens":
        return errors("MessageTokensCount", json.loads(body))
    if path == "/v1/models":
        page = json.loads(body)
        problems = [p for m in page.get("data") or [] for p in errors("ModelInfo", m)]
        if set(page) != {"data", "has_more", "first_id", "last_id"}:
            problems.append(f"model page keys: {sorted(page)}")
        return problems
    if path.startswith("/v1/models/"):
        return errors("ModelInfo", json.loads(body))
    return [f"no Anthropic check for {path}"]


def parse_events(body: bytes) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """(name, data) of every event, and the framing problems found."""
    events: list[tuple[str, dict[str, Any]]] = []
    problems: list[str] = []
    for frame in (f for f in body.decode().split("\n\n") if f):
        lines = frame.split("\n")
        if all(line.startswith(":") for line in lines):
            continue
        if (
            len(lines) != 2
            or not lines[0].startswith("event: ")
            or not lines[1].startswith("data: ")
        ):
            problems.append(f"unexpected frame: {frame[:80]!r}")
            continue
        name, data = lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :])
        if data.get("type") != name:
            problems.append(f"event name {name!r} differs from type {data.get('type')!r}")
        events.append((name, data))
    return events, problems


def check_message_stream(body: bytes, whole: bool) -> list[str]:
    """Every event of a type the SDK knows, in Anthropic's order: message_start first; blocks
    one at a time, indexes from 0, each start -> deltas of its own kind -> stop; then
    message_delta and message_stop, or an `error` event that ends the stream."""
    events, problems = parse_events(body)
    kinds = {"text": "text_delta", "thinking": ("thinking_delta", "signature_delta"),
             "tool_use": "input_json_delta", "redacted_thinking": ()}  # fmt: skip
    open_block: tuple[int, str] | None = None
    next_index = 0
    stage = "start"
    for name, data in events:
        if name == "ping":
            continue
        if name == "error":
            problems += errors("ErrorResponse", data)
            stage = "error"
            continue
        problems += errors("RawMessageStreamEvent", data)
        if stage == "error":
            problems.append(f"{name} after an error event")
        elif name == "message_start":
            if stage != "start":
                problems.append("message_start is not first")
            stage = "blocks"
        elif stage != "blocks" and name != "message_stop":
            problems.append(f"{name} out of order (stage {stage})")
        elif name == "content_block_start":
            if open_block is not None:
                problems.append(f"block {data['index']} starts while {open_block[0]} is open")
            if data["index"] != next_index:
                problems.append(f"block index {data['index']}, expected {next_index}")
            next_index += 1
            open_block = (data["index"], data["content_block"]["type"])
        elif name == "content_block_delta":
            if open_block is None or data["index"] != open_block[0]:
                problems.append(f"a delta for block {data['index']}, which is not open")
            elif data["delta"]["type"] not in kinds.get(open_block[1], ()):
                problems.append(f"a {data['delta']['type']} in a {open_block[1]} block")
        elif name == "content_block_stop":
            if open_block is None or data["index"] != open_block[0]:
                problems.append(f"a stop for block {data['index']}, which is not open")
            open_block = None
        elif name == "message_delta":
            if open_block is not None:
                problems.append("message_delta while a block is open")
            stage = "delta"
        elif name == "message_stop":
            if stage != "delta":
                problems.append("message_stop without message_delta first")
            stage = "stopped"
    if whole and stage not in ("stopped", "error"):
        problems.append(f"stream ends at stage {stage}, without message_stop or error")
    return problems


# -- httpx2 transports -------------------------------------------------------------------------


class _SyncStream(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, tap: Any) -> None:
        self.inner, self.tap = inner, tap

    def __iter__(self) -> Iterator[bytes]:
        for part in self.inner:
            self.tap.parts.append(part)
            yield part
        self.tap.whole = True

    def close(self) -> None:
        self.inner.close()
        self.tap.finish()


class _AsyncStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, tap: Any) -> None:
        self.inner, self.tap = inner, tap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.inner:
            self.tap.parts.append(part)
            yield part
        self.tap.whole = True

    async def aclose(self) -> None:
        await self.inner.aclose()
        self.tap.finish()


class ValidatingTransport2(httpx2.BaseTransport):
    def __init__(self, recorder: Any, tap: Any) -> None:
        self.inner = httpx2.HTTPTransport()
        self.recorder, self.tap = recorder, tap

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        tap = self.tap(self.recorder, request, response)
        assert isinstance(response.stream, httpx2.SyncByteStream)
        return httpx2.Response(
            response.status_code, headers=response.headers,
            stream=_SyncStream(response.stream, tap), extensions=response.extensions,
            request=request,
        )  # fmt: skip

    def close(self) -> None:
        self.inner.close()


class AsyncValidatingTransport2(httpx2.AsyncBaseTransport):
    def __init__(self, recorder: Any, tap: Any) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.recorder, self.tap = recorder, tap

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        tap = self.tap(self.recorder, request, response)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code, headers=response.headers,
            stream=_AsyncStream(response.stream, tap), extensions=response.extensions,
            request=request,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self.inner.aclose()
