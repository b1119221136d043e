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
from ..translate.cost import Measure, asked_for_accounting, with_accounting
from ..translate.errors import to_openai_error
from ..translate.openrouter import (
    ChatChunkRepair,
    chat_accounting,
    repair_completion,
    upstream_chat_body,
)
from ..translate.response import DONE, KEEPALIVE, error_frame
from .catalog import Catalog
from .pricing import CostMeter

log = logging.getLogger(__name__)
OPENAI = "openai"


class Repair(Protocol):
    """What the stream loop needs of a repairer (`ChatChunkRepair`, `ResponsesStreamRepair`)."""

    @property
    def over(self) -> bool: ...
    @property
    def used(self) -> Measure: ...
    @property
    def reported(self) -> float | None: ...
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
        meter: CostMeter,
    ) -> None:
        self._settings = settings
        self._client = client
        self._catalog = catalog
        self._metrics = metrics
        self._open_streams = open_streams
        self._meter = meter

    def note(self, endpoint: str, model: str, stream: bool, context: RequestContext) -> None:
        self._catalog.note(context, model, stream=stream, route=OPENAI, fal_app=OPENROUTER_APP)
        self._metrics.upstream_routes.labels(endpoint, OPENAI).inc()

    def log_input(self, body: dict[str, Any], context: RequestContext) -> None:
        if self._settings.log_prompts:
            context.prompt = body
            log.info("prompt", extra={"request_id": context.log.request_id, "fal_input": body})

    async def post(
        self, endpoint: str, body: dict[str, Any], context: RequestContext, receive: Receive
    ) -> dict[str, Any]:
        reply = await until_disconnect(self._client.post(endpoint, body, context.fal_key), receive)
        context.log.fal_request_id = reply.request_id
        context.usage.billable_units = reply.billable_units
        return reply.body

    async def open(
        self, endpoint: str, body: dict[str, Any], context: RequestContext, receive: Receive
    ) -> OpenRouterStream:
        stream = await until_disconnect(
            self._client.open_stream(endpoint, body, context.fal_key), receive
        )
        context.log.fal_request_id = stream.request_id
        context.usage.billable_units = stream.billable_units
        return stream

    def settle(
        self, context: RequestContext, model: str, used: Measure, reported: float | None
    ) -> None:
        """The request's usage and cost, OpenRouter's own figure first."""
        self._meter.settle(context.usage, model=model, used=used, reported=reported)

    async def frames(
        self,
        stream: OpenRouterStream,
        repair: Repair,
        on_error: Any,
        context: RequestContext | None = None,
        model: str = "",
        keepalive: bytes = KEEPALIVE,
    ) -> AsyncIterator[bytes]:
        """Repaired frames; `keepalive` while the upstream is silent; a failure after the
        stream began in-band, in the stream's own framing (`on_error`)."""
        metrics = self._metrics
        metrics.streams_in_flight.inc()
        started = time.perf_counter()
        first = True
        try:
            async for event in stream.events():
                if event is None:
                    yield keepalive
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
            if context is not None:  # at the stream's end, whatever ended it
                self.settle(context, model, repair.used, repair.reported)

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
        # OpenRouter's usage accounting is asked for every call; its cost fields reach only a
        # client that asked for them itself (docs/fal-protocol.md §14.4).
        asked = asked_for_accounting(parsed)
        body = with_accounting(upstream_chat_body(parsed))
        body["model"] = fal_model or chat.model
        stream = bool(chat.stream)
        self.note("chat", chat.model, stream, context)
        self.log_input(body, context)
        if not stream:
            answer = repair_completion(
                await self.post("chat/completions", body, context, receive), chat.model
            )
            usage = answer.get("usage")
            used, cost = chat_accounting(usage, asked) if usage is not None else (Measure(), None)
            self.settle(context, chat.model, used, cost)
            return Response(orjson.dumps(answer), media_type="application/json")
        upstream = await self.open("chat/completions", body, context, receive)
        # OpenRouter sends its usage chunk to a client that asked for `usage.include`.
        repair = ChatChunkRepair(
            chat.model, include_usage=chat.include_usage or asked, keep_accounting=asked
        )
        return EventStreamResponse(
            self.frames(upstream, repair, self._chat_error, context, chat.model),
            self._open_streams,
            farewell,
        )

    def _chat_error(self, exc: FalError) -> bytes:
        # The OpenAI SDK raises APIError on a truthy `error` (docs/openai-clients.md).
        return error_frame(self.error_body(exc)) + DONE
