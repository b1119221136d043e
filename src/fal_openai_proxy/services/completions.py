"""POST /v1/completions (OpenAI's legacy text completions) on fal's prompt apps: the client's
prompt is fal's `prompt`, stream and not; the frames and the stream loop are the chat
service's, in the `text_completion` shape (`translate/completions.py`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive

from ..base.metrics import Metrics
from ..base.settings import Settings
from ..fal.client import FalClient
from ..openai.completions import CompletionRequest
from ..openai.sse import EventStreamResponse, until_disconnect
from ..serve.context import RequestContext, clip_all
from ..translate.completions import TextCompletionEncoder, text_completion_body
from ..translate.cost import reported_cost
from ..translate.response import cut_at_stop, map_usage
from ..translate.stream import StreamTranslator
from .catalog import Catalog
from .chat import FAREWELL, ChatService

log = logging.getLogger(__name__)


class CompletionsService:
    def __init__(
        self,
        settings: Settings,
        fal: FalClient,
        catalog: Catalog,
        metrics: Metrics,
        open_streams: set[asyncio.Task[None]],
        chat: ChatService,
    ) -> None:
        """`chat`: its stream loop (`frames`) serves these streams too."""
        self._settings = settings
        self._fal = fal
        self._catalog = catalog
        self._open_streams = open_streams
        self._frames = chat.frames
        self._settle = chat.settle  # the request's usage and cost, as for chat
        self._routed = metrics.upstream_routes.labels("completions", "prompt")

    def fal_input(self, request: CompletionRequest, fal_model: str) -> dict[str, Any]:
        """The prompt app's input. A prompt over PROMPT_LIMIT keeps its end in `prompt` (what
        the model continues) and the text before it in `system_prompt`, up to
        SYSTEM_PROMPT_LIMIT; anything older is dropped (the seed's recency rule)."""
        settings = self._settings
        text = request.text
        payload: dict[str, Any] = {"model": fal_model, "prompt": text, "reasoning": False}
        if len(text) > settings.prompt_limit:
            cut = len(text) - settings.prompt_limit
            payload["prompt"] = text[cut:]
            payload["system_prompt"] = text[max(0, cut - settings.system_prompt_limit) : cut]
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.max_tokens is not None:
            payload["max_tokens"] = request.max_tokens
        return payload

    async def create(
        self, request: CompletionRequest, context: RequestContext, receive: Receive
    ) -> Response:
        # The model first, as for chat: media ids are a 400, bare ids that stand for nothing
        # a 404, ids outside an any-llm app's list a 404.
        app = self._settings.fal_chat_app
        self._catalog.check(app, request.model)
        fal_input = self.fal_input(request, self._catalog.fal_model(request.model))
        self._catalog.note(context, request.model, stream=bool(request.stream), route="prompt",
                           fal_app=app)  # fmt: skip
        fields = context.log
        self._routed.inc()
        if self._settings.log_prompts:
            log.info(
                "prompt", extra={"request_id": fields.request_id, "fal_input": clip_all(fal_input)}
            )
        if request.stream:
            stream = await until_disconnect(
                self._fal.open_stream(app, fal_input, context.fal_key), receive
            )
            fields.fal_request_id = stream.request_id
            encoder = TextCompletionEncoder(request.model, include_usage=request.include_usage)
            translator = StreamTranslator(encoder, stops=request.stop_sequences)

            def settle() -> None:  # at the stream's end, whatever ended it
                self._settle(context, request.model, app, stream.billable_units,
                             translator.usage, translator.reported_cost)  # fmt: skip

            return EventStreamResponse(
                self._frames(stream, translator, settle),
                self._open_streams,
                FAREWELL,
                self._settings.write_timeout,
            )
        run = (
            self._fal.run_direct
            if self._settings.fal_nonstream_mode == "run"
            else self._fal.run_queued
        )
        result = await until_disconnect(run(app, fal_input, context.fal_key), receive)
        fields.fal_request_id = result.request_id
        output = result.output.get("output")
        text, _ = cut_at_stop(output if isinstance(output, str) else "", request.stop_sequences)
        usage = map_usage(result.output.get("usage"))
        cost = reported_cost(result.output.get("usage"))
        self._settle(context, request.model, app, result.billable_units, usage, cost)
        body = text_completion_body(model=request.model, text=text, usage=usage)
        return Response(orjson.dumps(body), media_type="application/json")
