"""POST /v1/responses on fal's OpenAI route (OpenRouter's stateless Responses API)."""

from __future__ import annotations

import asyncio

import orjson
from starlette.responses import Response
from starlette.types import Receive

from ..fal.errors import FalError
from ..fal.openrouter import RESPONSES
from ..openai.base import CheckedBody
from ..openai.sse import EventStreamResponse
from ..serve.context import RequestContext
from ..translate.cost import asked_for_accounting
from ..translate.openrouter_responses import (
    ResponsesStreamRepair,
    repair_response,
    response_accounting,
)
from .openrouter import OpenRouterService

SHUTTING_DOWN = "The server is shutting down; retry the request."


class ResponsesService(OpenRouterService):
    async def create(
        self, request: CheckedBody, context: RequestContext, receive: Receive
    ) -> Response:
        request.body["model"] = self._catalog.chat_model(request.model)
        self.note("responses", request.model, request.stream, context)
        self.log_input(request.body, context)
        # The body goes on as it is (OpenRouter documents `usage.include` for chat only);
        # its `usage.cost` reaches a client that asked for it (docs/fal-protocol.md §14.4).
        asked = asked_for_accounting(request.body)
        if not request.stream:
            answer = await self.post(RESPONSES, request.body, context, receive)
            response = repair_response(answer, request.model)
            used, cost = response_accounting(response, asked)
            self.settle(context, request.model, used, cost)
            return Response(orjson.dumps(response), media_type="application/json")
        upstream = await self.open(RESPONSES, request.body, context, receive)
        repair = ResponsesStreamRepair(request.model, keep_accounting=asked)

        def on_error(exc: FalError) -> bytes:
            error = self.error_body(exc)["error"]
            code = "rate_limit_exceeded" if error.get("code") == "rate_limit_exceeded" else None
            return repair.failed(str(error["message"]), code or "server_error")

        frames = self.frames(upstream, repair, on_error, context, request.model)
        return ResponsesEventStream(frames, self._open_streams, repair)


class ResponsesEventStream(EventStreamResponse):
    """An event stream whose drain farewell is a `response.failed` in the stream's framing."""

    def __init__(
        self,
        frames: object,
        open_streams: set[asyncio.Task[None]],
        repair: ResponsesStreamRepair,
    ) -> None:
        self._repair = repair
        super().__init__(frames, open_streams, b"")  # type: ignore[arg-type]

    @property
    def _farewell(self) -> bytes:
        if self._repair.terminal:
            return b""
        return self._repair.failed(SHUTTING_DOWN, "server_error")

    @_farewell.setter
    def _farewell(self, value: bytes) -> None:
        pass  # computed when the drain comes, from what the stream has sent
