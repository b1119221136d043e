"""fal's OpenAI-compatible route: OpenRouter's API served at
`{FAL_RUN_URL}/openrouter/router/openai/v1/{chat/completions,responses,embeddings}`.

Every wire detail of that route lives here (docs/fal-protocol.md §9): the URLs, the
`Authorization: Key` header, the two error body shapes, and a raw SSE reader that
keeps event names (the Responses API sends `event:` lines) and `[DONE]`. Starting a call
(keys, failover, retries before fal started the work) is `CallStarter`'s, as for the prompt
apps; the timeouts are the same ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .decode import loads_object
from .errors import (
    FalBrokenError,
    FalError,
    FalStatusError,
    UpstreamProviderError,
    UpstreamStreamError,
    parse_error_response,
)
from .keys import KeyLease
from .retry import CallStarter
from .sse import MAX_EVENT_BYTES, LineBuffer, too_large
from .stream import TimedStream
from .timeouts import FalClock, Timeouts
from .transport import StreamingResponse, Transport
from .wire import billable_units, is_success, key_headers

# fal's endpoint id of the route (fal-js `types/endpoints.ts`; docs/fal-protocol.md §9.1).
OPENROUTER_APP = "openrouter/router/openai/v1"
CHAT_COMPLETIONS = "chat/completions"
RESPONSES = "responses"
EMBEDDINGS = "embeddings"


def route_error(
    status: int, headers: Mapping[str, str], body: bytes, key_index: int | None
) -> FalError:
    """A non-2xx answer of the route (docs/fal-protocol.md §9.2). fal's own failures carry
    `{"detail"}`; OpenRouter's carry `{"error": {"code": <int>, "message", "metadata"?}}`, or
    in the availability form `{"error": {"error_type", "http_status", "message"}}`."""
    error = parse_error_response(status, headers, body, key_index)
    openrouter = _openrouter_error(body)
    if openrouter is None:
        return error
    message, error_type = openrouter
    return UpstreamProviderError(status, message or error.message, error_type, error.retry_after)


def _openrouter_error(body: bytes) -> tuple[str, str | None] | None:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), dict):
        return None
    inner = parsed["error"]
    message = inner.get("message")
    metadata = inner.get("metadata")
    error_type = inner.get("error_type")
    if isinstance(metadata, dict) and isinstance(metadata.get("error_type"), str):
        error_type = metadata["error_type"]
    return (
        message if isinstance(message, str) else "",
        error_type if isinstance(error_type, str) else None,
    )


@dataclass(frozen=True, slots=True)
class OpenRouterReply:
    body: dict[str, Any]
    request_id: str | None
    billable_units: float | None = None  # docs/fal-protocol.md §14.2


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One event: its `event:` name ("" if none) and its data (b"[DONE]" for the sentinel)."""

    name: str
    data: bytes


class RawSSEDecoder:
    """Like `sse.SSEDecoder`, but keeps each event's name: the Responses API's framing.
    Bounded as it is: a line or an event over `max_event_bytes` is FalResponseTooLarge."""

    __slots__ = ("_data", "_data_bytes", "_limit", "_lines", "_name")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._lines = LineBuffer(max_event_bytes)
        self._limit = max_event_bytes
        self._data: list[bytes] = []
        self._data_bytes = 0
        self._name = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in self._lines.lines(chunk):
            if not line:
                if self._data:
                    events.append(SSEEvent(self._name, b"\n".join(self._data)))
                self._data, self._name, self._data_bytes = [], "", 0
            elif line.startswith(b":"):
                continue  # a comment: `: OPENROUTER PROCESSING`
            else:
                field, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if field == b"data":
                    self._data.append(value)
                    self._data_bytes += len(value)
                    if self._data_bytes > self._limit:
                        raise too_large(self._limit)
                elif field == b"event":
                    self._name = value.decode("utf-8", "replace")
        return events

    def close(self) -> list[SSEEvent]:
        events = self.feed(b"\n\n") if (self._lines.pending or self._data) else []
        self._lines.clear()
        return events


class OpenRouterStream(TimedStream):
    """An open event stream of the route. `events()` yields each SSEEvent, and `None` each
    keep-alive interval without one; `close()` drops the connection (fal and OpenRouter then
    stop the work) and frees the key."""

    __slots__ = ()

    async def events(self) -> AsyncIterator[SSEEvent | None]:
        decoder = RawSSEDecoder(self._timeouts.max_event_bytes)
        while True:
            chunk = await self._read()
            if chunk is None:
                yield None
                continue
            if chunk:
                # Any bytes, OpenRouter's `: OPENROUTER PROCESSING` comments included, show
                # the upstream is alive; the total timeout still bounds a silent model.
                self._progressed()
            for event in decoder.feed(chunk) if chunk else decoder.close():
                yield event
            if not chunk:
                return


class OpenRouterClient:
    def __init__(
        self, *, run_url: str, http: Transport, starter: CallStarter, timeouts: Timeouts
    ) -> None:
        self._base = f"{run_url}/{OPENROUTER_APP}"
        self._http = http
        self._starter = starter
        self._timeouts = timeouts

    def url(self, endpoint: str) -> str:
        return f"{self._base}/{endpoint}"

    async def post(
        self, endpoint: str, payload: Mapping[str, Any], client_key: str | None
    ) -> OpenRouterReply:
        """A non-stream call: the whole JSON answer. fal's direct `POST {run}/{app}`
        (docs/fal-protocol.md §3.1, §9.1): the route has no queue form documented to work."""
        loop = asyncio.get_running_loop()
        timeouts = self._timeouts
        total_deadline = loop.time() + timeouts.total
        url = self.url(endpoint)
        body = orjson.dumps(payload)

        clock = FalClock(total_deadline, timeouts.total)

        async def attempt(lease: KeyLease) -> OpenRouterReply:
            headers = key_headers(lease.key, time_left=total_deadline - loop.time())
            try:
                with clock.limit(None, "total"):
                    reply = await self._http.send("POST", url, headers, body)
            except TimeoutError:
                raise clock.timeout() from None
            if not is_success(reply.status):
                raise route_error(reply.status, reply.headers, reply.body, lease.index)
            return OpenRouterReply(
                loads_object(reply.body),
                reply.headers.get("x-fal-request-id"),
                billable_units(reply.headers),
            )

        try:
            result, lease = await self._starter.start(attempt, client_key, total_deadline)
        finally:
            clock.close()
        lease.release()
        return result

    async def open_stream(
        self, endpoint: str, payload: Mapping[str, Any], client_key: str | None
    ) -> OpenRouterStream:
        """POST with `stream: true` and wait for a 200 event stream."""
        loop = asyncio.get_running_loop()
        timeouts = self._timeouts
        total_deadline = loop.time() + timeouts.total
        url = self.url(endpoint)
        body = orjson.dumps(payload)

        clock = FalClock(total_deadline, timeouts.total)  # the stream's one timer from now on

        async def attempt(lease: KeyLease) -> StreamingResponse:
            left = total_deadline - loop.time()
            headers = key_headers(lease.key, accept="text/event-stream", time_left=left)
            try:
                with clock.limit(timeouts.first_event, "first_event"):
                    response = await self._http.open("POST", url, headers, body)
                    if not is_success(
                        response.status
                    ) or "text/event-stream" not in response.headers.get("content-type", ""):
                        raise await _stream_error(response, lease)
            except TimeoutError:
                raise clock.timeout() from None
            return response

        try:
            response, lease = await self._starter.start(attempt, client_key, total_deadline)
        except BaseException:
            clock.close()
            raise
        return OpenRouterStream(response, lease, timeouts=timeouts, clock=clock)


async def _stream_error(response: StreamingResponse, lease: KeyLease) -> FalError:
    try:
        body = await response.read_body()
    finally:
        response.close()
    if is_success(response.status):
        # A JSON 2xx to a stream call: OpenRouter's error body, or a broken answer.
        problem = _openrouter_error(body)
        if problem is not None:
            return UpstreamStreamError(problem[0] or "the upstream reported an error")
        return FalBrokenError("fal answered the stream call without an event stream")
    return route_error(response.status, response.headers, body, lease.index)


__all__ = [
    "CHAT_COMPLETIONS",
    "EMBEDDINGS",
    "OPENROUTER_APP",
    "RESPONSES",
    "FalStatusError",
    "OpenRouterClient",
    "OpenRouterReply",
    "OpenRouterStream",
    "RawSSEDecoder",
    "SSEEvent",
    "UpstreamProviderError",
    "UpstreamStreamError",
    "route_error",
]
