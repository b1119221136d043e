"""POST /v1/chat/completions: parse, hand to the chat service, answer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..openai.chat import ChatCompletionRequest, parse_chat_body
from ..serve.context import request_context
from ..serve.state import proxy_state
from .errors import ERRORS, SSE
from .registry import Body, Endpoint, Operation


async def create_chat_completion(request: Request) -> Response:
    """Upstream failures propagate as FalError to the app's one handler."""
    state = proxy_state(request)
    body = await request.body()
    chat = parse_chat_body(body, state.settings.max_content_parts)
    return await state.services.chat.complete(
        chat, request_context(request.scope), request.receive, body
    )


ROUTES = [
    Endpoint(
        "POST", "/v1/chat/completions", create_chat_completion,
        Operation(
            "Chat completion, streaming (`\"stream\": true`, server-sent events) or not.",
            request=ChatCompletionRequest,
            example={"model": "google/gemini-2.5-flash",
                     "messages": [{"role": "user", "content": "Hi"}]},
            responses=dict(ERRORS),
            media_types=SSE,
        ),
        body=Body.JSON,
        direct=True,
    ),
]  # fmt: skip
