"""Requests served by fal's OpenAI route: chat (tools, n, logprobs, JSON formats), the
Responses API and embeddings. The bodies go on nearly as the client sent them; what comes
back is repaired by `translate/openrouter.py` and errors are mapped by
`translate/errors.py`, as on the prompt route.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
from starlette.responses import Response
from starlette.types import Receive

from ..base.metrics import Metrics
from ..base.settings import Settings
from ..fal.errors import FalError
from ..fal.openrouter import OPENROUTER_APP, OpenRouterClient, OpenRouterStream
from ..openai.chat import ChatCompletionRequest
from ..openai.errors import invalid_request
from ..openai.sse import EventStreamResponse, until_disconnect
from ..serve.context import RequestContext
from ..translate.errors import to_openai_error
from ..translate.openrouter import ChatChunkRepair, repair_completion, upstream_chat_body
from ..translate.response import DONE, KEEPALIVE, error_frame
from .catalog import Catalog

log = logging.getLogger(__name__)
OPENAI = "openai"


class Repair(Protocol):
    """What the stream loop needs of a repairer (`ChatChunkRepair`, `ResponsesStreamRepair`)."""

    @property
    def over(self) -> bool: ...
    def feed(self, data: bytes) -> bytes: ...
    def end(self) -> bytes: ...


class OpenRouterService:
    """What the three endpoints share: the client, bookkeeping, and the stream loop."""

    def __init__(
        self,
        settings: Settings,
        client: OpenRouterClient,
        catalog: Catalog,
        metrics: Metrics,
        open_streams: set[asyncio.Task[None]],
    ) -> None:
        self._settings = settings
        self._client = client
        self._catalog = catalog
        self._metrics = metrics
        self._open_streams = open_streams

    def note(self, endpoint: str, model: str, stream: bool, context: RequestContext) -> None:
        self._catalog.note(context, model, stream=stream, route=OPENAI, fal_app=OPENROUTER_APP)
        self._metrics.upstream_routes.labels(endpoint, OPENAI).inc()

    def log_input(self, body: dict[str, Any], context: RequestContext) -> None:
        if self._settings.log_prompts:
            log.info("prompt", extra={"request_id": context.log.request_id, "fal_input": body})

    async def post(
        self, endpoint: str, body: dict[str, Any], context: RequestContext, receive: Receive
    ) -> dict[str, Any]:
        reply = await until_disconnect(self._client.post(endpoint, body, context.fal_key), receive)
        context.log.fal_request_id = reply.request_id
        return reply.body

    async def open(
        self, endpoint: str, body: dict[str, Any], context: RequestContext, receive: Receive
    ) -> OpenRouterStream:
        stream = await until_disconnect(
            self._client.open_stream(endpoint, body, context.fal_key), receive
        )
        context.log.fal_request_id = stream.request_id
        return stream

    async def frames(
        self, stream: OpenRouterStream, repair: Repair, on_error: Any
    ) -> AsyncIterator[bytes]:
        """Repaired frames; keep-alives while the upstream is silent; a failure after the
        stream began in-band, in the stream's own framing (`on_error`)."""
        metrics = self._metrics
        metrics.streams_in_flight.inc()
        started = time.perf_counter()
        first = True
        try:
            async for event in stream.events():
                if event is None:
                    yield KEEPALIVE
                    continue
                frames = repair.feed(event.data)
                if frames:
                    if first:
                        first = False
                        metrics.ttft.observe(time.perf_counter() - started)
                    yield frames
                if repair.over:
                    break  # closing the connection below ends the upstream's work
            else:
                yield repair.end()
        except FalError as exc:
            metrics.upstream_errors.labels(exc.kind).inc()
            log.warning("fal's OpenAI route failed after the stream began: %s", exc.kind)
            yield on_error(exc)
        finally:
            stream.close()
            metrics.streams_in_flight.dec()

    def error_body(self, exc: FalError) -> dict[str, Any]:
        return to_openai_error(exc, pass_through=self._settings.pass_through).body()


class OpenRouterChatService(OpenRouterService):
    """POST /v1/chat/completions on fal's OpenAI route, stream and not."""

    async def complete(
        self,
        chat: ChatCompletionRequest,
        raw: bytes,
        context: RequestContext,
        receive: Receive,
        farewell: bytes,
        fal_model: str | None = None,
    ) -> Response:
        """`fal_model`: the id fal takes (`openai/gpt-4o` for `gpt-4o`); the answer keeps the
        client's."""
        parsed = orjson.loads(raw)
        if not isinstance(parsed, dict):  # validated already; a guard for type checkers
            raise invalid_request("The body must be a JSON object.", code="invalid_json")
        body = upstream_chat_body(parsed)
        body["model"] = fal_model or chat.model
        stream = bool(chat.stream)
        self.note("chat", chat.model, stream, context)
        self.log_input(body, context)
        if not stream:
            answer = await self.post("chat/completions", body, context, receive)
            return Response(
                orjson.dumps(repair_completion(answer, chat.model)), media_type="application/json"
            )
        upstream = await self.open("chat/completions", body, context, receive)
        repair = ChatChunkRepair(chat.model, include_usage=chat.include_usage)
        return EventStreamResponse(
            self.frames(upstream, repair, self._chat_error), self._open_streams, farewell
        )

    def _chat_error(self, exc: FalError) -> bytes:
        # The OpenAI SDK raises APIError on a truthy `error` (docs/openai-clients.md).
        return error_frame(self.error_body(exc)) + DONE
