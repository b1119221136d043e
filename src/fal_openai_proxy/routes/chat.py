"""POST /v1/chat/completions: parse, hand to the chat service, answer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..context import request_context
from ..openai.requests import parse_chat_body
from ..openai.sse import ClientGone
from ..state import proxy_state

CLIENT_CLOSED = 499  # nginx's status for a client that went away; logged, never sent


async def create_chat_completion(request: Request) -> Response:
    """Upstream failures propagate as FalError to the app's one handler."""
    state = proxy_state(request)
    body = await request.body()
    chat = parse_chat_body(body, state.settings.max_content_parts)
    service = state.chat
    try:
        return await service.complete(chat, request_context(request.scope), request.receive, body)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
