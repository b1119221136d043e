"""POST /v1/embeddings (always fal's OpenAI route)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..context import request_context
from ..openai.endpoints import parse_embeddings_request
from ..openai.sse import ClientGone
from ..state import proxy_state
from .chat import CLIENT_CLOSED


async def create_embeddings(request: Request) -> Response:
    parsed = parse_embeddings_request(await request.body())
    service = proxy_state(request).embeddings
    assert service is not None  # built by create_app
    try:
        return await service.create(parsed, request_context(request.scope), request.receive)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
