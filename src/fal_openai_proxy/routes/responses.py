"""POST /v1/responses (fal's OpenAI route), and a clear 404 for what needs stored state."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..context import request_context
from ..openai.endpoints import parse_responses_request
from ..openai.errors import ProxyError
from ..openai.sse import ClientGone
from ..state import proxy_state
from .chat import CLIENT_CLOSED


async def create_response(request: Request) -> Response:
    parsed = parse_responses_request(await request.body())
    service = proxy_state(request).responses
    assert service is not None  # built by create_app
    try:
        return await service.create(parsed, request_context(request.scope), request.receive)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)


async def stored_response(request: Request) -> Response:
    """GET, DELETE, cancel, input_items: OpenRouter's Responses API stores no response."""
    response_id = request.path_params["response_id"].split("/", 1)[0]
    raise ProxyError(
        404,
        f"No response with id '{response_id}' is stored: this server's Responses API is "
        "stateless (responses are never stored), so responses cannot be retrieved.",
        param="response_id",
        code="response_not_found",
    )
