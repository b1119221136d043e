"""The Messages service: an Anthropic request -> the chat request it means -> the same
MODEL_ROUTES decision as chat (services/routing.py) -> fal -> Anthropic's answer or events.

Built once in `create_app`. Every failure is raised as an `AnthropicError` (or a FalError the
route maps with translate/anthropic_errors.py); once a stream has begun, failures go in-band
as Anthropic's `error` event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import Receive

from ..anthropic.errors import AnthropicError, error_event, from_proxy_error, invalid_request
from ..anthropic.messages import MessagesRequest, parse_count_tokens_body, parse_messages_body
from ..anthropic.sse import PING
from ..base.metrics import Metrics
from ..base.settings import Settings
from ..fal.client import FalClient
from ..fal.errors import FalError
from ..fal.stream import FalStream
from ..openai.chat import ChatCompletionRequest, check_limits, check_supported
from ..openai.errors import ProxyError
from ..openai.sse import EventStreamResponse, until_disconnect
from ..openai.tools import check_tools
from ..serve.context import RequestContext
from ..translate.anthropic_errors import to_anthropic_error
from ..translate.anthropic_request import chat_body
from ..translate.anthropic_response import from_completion, from_prompt_output
from ..translate.anthropic_stream import ChatStreamToMessages, PromptStreamToMessages
from ..translate.anthropic_tokens import count_request
from ..translate.cost import Measure, reported_cost, with_accounting
from ..translate.openrouter import chat_accounting, repair_completion
from ..translate.response import map_usage
from .catalog import Catalog
from .chat import ChatService
from .openrouter import OpenRouterService
from .router import OPENAI
from .tokens import Tokenizer

log = logging.getLogger(__name__)
ENDPOINT = "messages"  # the metrics label of this endpoint
FAREWELL = error_event(
    AnthropicError(529, "The server is shutting down; retry the request.", "overloaded_error")
)


class MessagesService:
    def __init__(
        self,
        settings: Settings,
        chat: ChatService,
        route: OpenRouterService,
        catalog: Catalog,
        fal: FalClient,
        metrics: Metrics,
        open_streams: set[asyncio.Task[None]],
        tokenizer: Tokenizer,
    ) -> None:
        self._settings = settings
        self._chat = chat
        self._route = route
        self._catalog = catalog
        self._fal = fal
        self._metrics = metrics
        self._open_streams = open_streams
        self.tokenizer = tokenizer

    # -- POST /v1/messages -------------------------------------------------------------------

    async def create(self, raw: bytes, context: RequestContext, receive: Receive) -> Response:
        """Raises AnthropicError, FalError, or ClientGone if the client leaves first."""
        request = parse_messages_body(raw)
        body = chat_body(request)
        try:
            chat = self._chat_request(body)
            check_tools(chat)
            # The model first, as for chat: 400 for an image or audio model, 404 for a bare id
            # that stands for nothing; OpenAI's bare ids become fal's (`gpt-4o` -> `openai/...`).
            body["model"] = self._catalog.chat_model(request.model)
            self._chat.check_limits(chat)
            if self._chat.route(chat) == OPENAI:
                return await self._openrouter(request, body, context, receive)
            check_supported(chat)
        except ProxyError as exc:
            raise from_proxy_error(exc) from None
        return await self._prompt(request, chat, context, receive)

    def _chat_request(self, body: dict[str, Any]) -> ChatCompletionRequest:
        try:
            chat = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:  # our own translation's fault if it happens
            log.warning("a translated Messages request did not validate: %s", exc.errors()[:1])
            raise invalid_request("The request cannot be expressed as a chat request.") from None
        check_limits(chat, self._settings.max_content_parts)
        return chat

    async def _openrouter(
        self,
        request: MessagesRequest,
        body: dict[str, Any],
        context: RequestContext,
        receive: Receive,
    ) -> Response:
        route, model = self._route, request.model
        route.note(ENDPOINT, model, bool(request.stream), context)
        # OpenRouter's usage accounting, for the request's cost (docs/fal-protocol.md §14.4);
        # Anthropic's usage has no place for it, so the client never sees it.
        body = with_accounting(body)
        route.log_input(body, context)
        if not request.stream:
            answer = await route.post("chat/completions", body, context, receive)
            completion = repair_completion(answer, model)
            usage = completion.get("usage")
            used, cost = chat_accounting(usage, False) if usage is not None else (Measure(), None)
            route.settle(context, model, used, cost)
            return _json(from_completion(completion, model, request.stops))
        upstream = await route.open("chat/completions", body, context, receive)
        translate = ChatStreamToMessages(model, request.stops)
        frames = route.frames(upstream, translate, self._error_event, context, model, PING)
        return self._stream_response(_prepend(translate.head(), frames))

    async def _prompt(
        self,
        request: MessagesRequest,
        chat: ChatCompletionRequest,
        context: RequestContext,
        receive: Receive,
    ) -> Response:
        call = self._chat.plan(chat, context)
        fal, key = self._fal, context.fal_key
        if request.stream:
            stream = await until_disconnect(fal.open_stream(call.app, call.input, key), receive)
            context.log.fal_request_id = stream.request_id
            translate = PromptStreamToMessages(request.model, request.stops)

            def settle() -> None:  # at the stream's end, whatever ended it
                translator = translate.translator
                self._chat.settle(
                    context, request.model, call.app, stream.billable_units,
                    translator.usage, translator.reported_cost,
                )  # fmt: skip

            return self._stream_response(self._prompt_frames(stream, translate, settle))
        run = fal.run_direct if self._settings.fal_nonstream_mode == "run" else fal.run_queued
        result = await until_disconnect(run(call.app, call.input, key), receive)
        context.log.fal_request_id = result.request_id
        output = result.output
        usage = output.get("usage")
        self._chat.settle(
            context, request.model, call.app, result.billable_units, map_usage(usage),
            reported_cost(usage),
        )  # fmt: skip
        text = output.get("output")
        text, stop = first_stop(text if isinstance(text, str) else "", request.stops)
        return _json(from_prompt_output(output, request.model, text, stop))

    async def _prompt_frames(
        self, stream: FalStream, translate: PromptStreamToMessages, settle: Callable[[], None]
    ) -> AsyncIterator[bytes]:
        metrics = self._metrics
        metrics.streams_in_flight.inc()
        started = time.perf_counter()
        first = True
        try:
            yield translate.head()
            async for fal_event in stream.events():
                if fal_event is None:
                    yield PING
                    continue
                frames = translate.feed(fal_event)
                if frames:
                    if first:
                        first = False
                        metrics.ttft.observe(time.perf_counter() - started)
                    yield frames
                if translate.stopped:
                    break  # closing the fal connection below stops the generation
            yield translate.end()
        except FalError as exc:
            metrics.upstream_errors.labels(exc.kind).inc()
            log.warning("fal stream failed after it began: %s", exc.kind)
            yield self._error_event(exc)
        finally:
            stream.close()
            metrics.streams_in_flight.dec()
            settle()

    def _stream_response(self, frames: AsyncIterator[bytes]) -> Response:
        return EventStreamResponse(
            frames, self._open_streams, FAREWELL, self._settings.write_timeout
        )

    def _error_event(self, exc: FalError) -> bytes:
        return error_event(self.error(exc))

    def error(self, exc: FalError) -> AnthropicError:
        return to_anthropic_error(exc, pass_through=self._settings.pass_through)

    # -- POST /v1/messages/count_tokens ------------------------------------------------------

    async def count_tokens(self, raw: bytes, context: RequestContext) -> Response:
        request = parse_count_tokens_body(raw)
        context.log.model = request.model  # first: a refused model is logged too
        context.check_model(request.model)  # a virtual key's models, as for every endpoint
        count = await self.tokenizer.counter()
        return _json({"input_tokens": count_request(request, count)})


def first_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """`text` up to its first stop sequence, and that sequence (None if none occurs)."""
    found = [(index, stop) for stop in stops if (index := text.find(stop)) >= 0]
    if not found:
        return text, None
    index, stop = min(found, key=lambda item: item[0])
    return text[:index], stop


async def _prepend(head: bytes, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield head
        async for frame in frames:
            yield frame
    finally:
        close = getattr(frames, "aclose", None)
        if close is not None:
            await close()


def _json(body: Mapping[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
