"""POST /v1/completions: OpenAI's legacy text completions, on fal's prompt apps."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..context import request_context
from ..openai.completions import parse_completion_body
from ..openai.sse import ClientGone
from ..state import proxy_state
from .chat import CLIENT_CLOSED


async def create_completion(request: Request) -> Response:
    parsed = parse_completion_body(await request.body())
    service = proxy_state(request).completions
    assert service is not None  # built by create_app
    try:
        return await service.create(parsed, request_context(request.scope), request.receive)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
