"""The chat service: one OpenAI chat request -> one fal call -> the OpenAI answer.

Built once in `create_app`; the route hands it a parsed request. Upstream failures before
the first byte propagate as `FalError` (the route maps them); once a stream has begun they
are sent in-band, mapped by the same table (`translate/errors.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

import orjson
from starlette.responses import Response
from starlette.types import Receive

from ..base.metrics import Metrics
from ..base.settings import Settings
from ..fal.client import FalClient, QueueResult
from ..fal.errors import FalError
from ..openai.chat import ChatCompletionRequest, check_supported
from ..openai.errors import invalid_request
from ..openai.sse import EventStreamResponse, until_disconnect
from ..openai.tools import check_stream_options, check_tools, needs_openrouter
from ..serve.context import RequestContext, clip_all
from ..translate.cost import Measure, reported_cost
from ..translate.errors import to_openai_error
from ..translate.request import FalCall, build_fal_call
from ..translate.response import (
    DONE,
    KEEPALIVE,
    ChunkEncoder,
    completion_body,
    cut_at_stop,
    error_frame,
    map_usage,
    new_completion_id,
)
from ..translate.stream import StreamTranslator
from .catalog import Catalog
from .openrouter import OpenRouterChatService
from .pricing import CostMeter
from .router import AUTO, OPENAI, ModelRouter

log = logging.getLogger(__name__)
# Sent to the streams still open when the drain timeout expires.
FAREWELL = (
    error_frame(
        {
            "error": {
                "message": "The server is shutting down; retry the request.",
                "type": "server_error",
                "param": None,
                "code": "server_shutting_down",
            }
        }
    )
    + DONE
)


class EventSource(Protocol):
    """What the stream loop needs of a fal stream (`fal.stream.FalStream`, or a fake)."""

    def events(self) -> AsyncIterator[dict[str, object] | None]: ...
    def close(self) -> None: ...


class ChatService:
    def __init__(
        self,
        settings: Settings,
        fal: FalClient,
        catalog: Catalog,
        metrics: Metrics,
        open_streams: set[asyncio.Task[None]],
        routes: ModelRouter,
        openrouter: OpenRouterChatService,
        meter: CostMeter,
    ) -> None:
        self._meter = meter
        self._routes = routes
        self._openrouter = openrouter
        self._prompt_routed = metrics.upstream_routes.labels("chat", "prompt")
        self._settings = settings
        self._fal = fal
        self._catalog = catalog
        self._metrics = metrics
        self._open_streams = open_streams

    def plan(self, chat: ChatCompletionRequest, context: RequestContext) -> FalCall:
        """Check the request against our limits and the catalog; the fal call to make."""
        settings = self._settings
        self.check_limits(chat)
        call = build_fal_call(
            chat,
            chat_app=settings.fal_chat_app,
            vision_app=settings.fal_vision_app,
            prompt_limit=settings.prompt_limit,
            system_prompt_limit=settings.system_prompt_limit,
            model=self._catalog.fal_model(chat.model),
        )
        self._catalog.check(call.app, chat.model)
        self._catalog.note(
            context, chat.model, stream=bool(chat.stream), route="prompt", fal_app=call.app
        )
        if settings.log_prompts:
            context.prompt = clip_all(call.input)
            log.info(
                "prompt", extra={"request_id": context.log.request_id, "fal_input": context.prompt}
            )
        return call

    def check_limits(self, chat: ChatCompletionRequest) -> None:
        limit = self._settings.max_messages
        if len(chat.messages) > limit:
            raise invalid_request(
                f"Too many messages: at most {limit} are allowed.",
                param="messages",
                code="array_above_max_length",
            )

    def route(self, chat: ChatCompletionRequest) -> str:
        """`prompt` or `openai` (MODEL_ROUTES; `auto` switches only when it must)."""
        route = self._routes.route_for(chat.model)
        if route == AUTO:
            return OPENAI if needs_openrouter(chat) else "prompt"
        return route

    async def complete(
        self,
        chat: ChatCompletionRequest,
        context: RequestContext,
        receive: Receive,
        raw: bytes | None = None,
    ) -> Response:
        """Run the request; ClientGone if the client leaves first. `raw`: the client's body,
        sent on (nearly) as it is if the request takes fal's OpenAI route."""
        check_tools(chat)
        # The model first, whatever route the request takes: an image or audio model is a 400
        # and a bare id that stands for nothing a 404, with tools or without.
        fal_model = self._catalog.chat_model(chat.model)
        if raw is not None and self.route(chat) == OPENAI:
            self.check_limits(chat)
            check_stream_options(chat)
            return await self._openrouter.complete(chat, raw, context, receive, FAREWELL, fal_model)
        check_supported(chat)
        self._prompt_routed.inc()
        call = self.plan(chat, context)
        if chat.stream:
            return await self._stream(chat, call, context, receive)
        run = (
            self._fal.run_direct
            if self._settings.fal_nonstream_mode == "run"
            else self._fal.run_queued
        )
        result = await until_disconnect(run(call.app, call.input, context.fal_key), receive)
        context.log.fal_request_id = result.request_id
        usage = result.output.get("usage")
        cost = reported_cost(usage)
        self.settle(context, chat.model, call.app, result.billable_units, map_usage(usage), cost)
        return Response(self.completion(chat, result, context), media_type="application/json")

    def settle(
        self,
        context: RequestContext,
        model: str,
        app: str,
        units: float | None,
        tokens: Mapping[str, int] | None,
        reported: float | None,
    ) -> None:
        """The request's usage and cost (OpenRouter's figure when the app passes it on)."""
        usage = context.usage
        usage.fal_app = app
        usage.billable_units = units
        used = Measure(
            input_tokens=tokens["prompt_tokens"] if tokens else None,
            output_tokens=tokens["completion_tokens"] if tokens else None,
        )
        self._meter.settle(usage, model=model, used=used, reported=reported)

    def completion(
        self, chat: ChatCompletionRequest, result: QueueResult, context: RequestContext
    ) -> bytes:
        output = result.output
        text = output.get("output")
        content, _ = cut_at_stop(text if isinstance(text, str) else "", chat.stop_sequences)
        reasoning = output.get("reasoning")
        body = completion_body(
            completion_id=new_completion_id(),
            model=chat.model,
            content=content,
            reasoning=reasoning
            if isinstance(reasoning, str) and not chat.reasoning_hidden
            else None,
            usage=map_usage(output.get("usage")),
        )
        if self._settings.log_prompts:
            context.answer = clip_all(content)
            log.info(
                "completion", extra={"request_id": context.log.request_id, "output": context.answer}
            )
        return orjson.dumps(body)

    async def _stream(
        self, chat: ChatCompletionRequest, call: FalCall, context: RequestContext, receive: Receive
    ) -> Response:
        stream = await until_disconnect(
            self._fal.open_stream(call.app, call.input, context.fal_key), receive
        )
        context.log.fal_request_id = stream.request_id
        translator = StreamTranslator(
            ChunkEncoder(chat.model, include_usage=chat.include_usage),
            stops=chat.stop_sequences,
            show_reasoning=not chat.reasoning_hidden,
        )
        # The stream holds only these, not the request and the fal input (~2 KB per stream).
        model, app = chat.model, call.app

        def settle() -> None:  # at the stream's end, whatever ended it
            self.settle(
                context,
                model,
                app,
                stream.billable_units,
                translator.usage,
                translator.reported_cost,
            )

        return EventStreamResponse(
            self.frames(stream, translator, settle),
            self._open_streams,
            FAREWELL,
            self._settings.write_timeout,
        )

    async def frames(
        self,
        stream: EventSource,
        translator: StreamTranslator,
        on_end: Callable[[], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """The client's frames: role chunk, deltas, finish, usage, [DONE]; errors in-band."""
        metrics = self._metrics
        metrics.streams_in_flight.inc()
        started = time.perf_counter()
        try:
            if head := translator.encoder.role():  # none on legacy text completions
                yield head
            del head  # not kept in this frame for the stream's life
            async for event in stream.events():
                if event is None:
                    yield KEEPALIVE
                    continue
                had_content = translator.first_content_sent
                frames = translator.feed(event)
                if frames:
                    if not had_content and translator.first_content_sent:
                        metrics.ttft.observe(time.perf_counter() - started)
                    yield frames
                if translator.stopped:
                    break  # closing the fal connection below stops the generation
            yield translator.finish()
        except FalError as exc:
            yield self._error_frames(exc)
        finally:
            stream.close()
            metrics.streams_in_flight.dec()
            if on_end is not None:
                on_end()

    def _error_frames(self, exc: FalError) -> bytes:
        body = to_openai_error(exc, pass_through=self._settings.pass_through).body()
        self._metrics.upstream_errors.labels(exc.kind).inc()
        log.warning("fal stream failed after it began: %s", exc.kind)
        return error_frame(body) + DONE
