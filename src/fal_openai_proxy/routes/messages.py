"""POST /v1/messages and POST /v1/messages/count_tokens: Anthropic's Messages API.

Every failure answers in Anthropic's error shape (anthropic/errors.py), whatever raised it:
these handlers map all of them themselves rather than leave any to the app's OpenAI-shaped
handlers.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..anthropic.errors import API_ERROR, AnthropicError, from_proxy_error
from ..context import RequestContext, request_context
from ..fal.errors import FalError, FalStatusError
from ..openai.errors import ProxyError
from ..openai.sse import ClientGone
from ..services.messages import MessagesService
from ..state import proxy_state
from .chat import CLIENT_CLOSED

log = logging.getLogger(__name__)


async def create_message(request: Request) -> Response:
    context = request_context(request.scope)
    try:
        service = _service(request)
        body = await request.body()
        return await service.create(body, context, request.receive)
    except Exception as exc:
        return _failure(request, context, exc)


async def count_message_tokens(request: Request) -> Response:
    context = request_context(request.scope)
    try:
        service = _service(request)
        return await service.count_tokens(await request.body(), context)
    except Exception as exc:
        return _failure(request, context, exc)


def _service(request: Request) -> MessagesService:
    service = proxy_state(request).messages
    assert service is not None
    return service


def _failure(request: Request, context: RequestContext, exc: Exception) -> Response:
    if isinstance(exc, ClientGone | ClientDisconnect):
        context.log.error_type = "client_disconnected"
        return Response(status_code=CLIENT_CLOSED)
    if isinstance(exc, FalError):
        error = _service(request).error(exc)
        context.log.error_type = exc.kind
        if isinstance(exc, FalStatusError):
            context.log.fal_request_id = exc.request_id
    elif isinstance(exc, ProxyError):
        error = from_proxy_error(exc)
    elif isinstance(exc, AnthropicError):
        error = exc
    else:
        log.exception("unexpected error", extra={"request_id": context.log.request_id})
        error = AnthropicError(500, "The server had an error processing your request.", API_ERROR)
        context.log.error_type = "internal_error"
    if context.log.error_type is None:
        context.log.error_type = error.code or error.type
    return anthropic_response(error)


def anthropic_response(error: AnthropicError) -> Response:
    return Response(
        error.json(), error.status, headers=error.headers, media_type="application/json"
    )
