"""The app's one mapping from exceptions to answers: OpenAI-shaped errors, fal's errors as
docs/errors.md lists them, a client that has gone (logged as 499), and a 500 for anything
unexpected (logged with its traceback, never sent)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..anthropic.errors import AnthropicError, from_proxy_error, wants_anthropic_errors
from ..fal.errors import FalError, FalStatusError
from ..openai.errors import SERVER_ERROR, ProxyError
from ..openai.sse import ClientGone
from ..translate.anthropic_errors import to_anthropic_error
from ..translate.errors import to_openai_error
from .context import request_context
from .state import proxy_state

log = logging.getLogger("fal_openai_proxy.serve.app")
CLIENT_CLOSED = 499  # nginx's status for a client that went away; logged, never sent
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def error_response(exc: ProxyError | AnthropicError, request: Request) -> Response:
    """In OpenAI's shape, or Anthropic's for an Anthropic client (`wants_anthropic_errors`:
    /v1/messages, or any request that sends `anthropic-version`)."""
    if isinstance(exc, ProxyError) and wants_anthropic_errors(request.scope):
        exc = from_proxy_error(exc)
    return Response(exc.json(), exc.status, headers=exc.headers, media_type="application/json")


async def proxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProxyError)
    request_context(request.scope).log.error_type = exc.code or exc.type
    return error_response(exc, request)


async def anthropic_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AnthropicError)
    request_context(request.scope).log.error_type = exc.code or exc.type
    return error_response(exc, request)


async def upstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FalError)
    settings = proxy_state(request).settings
    error: ProxyError | AnthropicError
    if wants_anthropic_errors(request.scope):
        error = to_anthropic_error(exc, pass_through=settings.pass_through)
    else:
        error = to_openai_error(exc, pass_through=settings.pass_through)
    fields = request_context(request.scope).log
    fields.error_type = exc.kind
    if isinstance(exc, FalStatusError):
        fields.fal_request_id = exc.request_id
        if exc.account_locked and not settings.pass_through:
            log.error("fal's account of the server's key #%s is locked", exc.key_index)
        elif exc.status in (401, 403) and not settings.pass_through:
            log.error("fal refused the server's key #%s (HTTP %d)", exc.key_index, exc.status)
    return error_response(error, request)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
        code: str | None = "unknown_url"
    else:
        message, code = str(exc.detail), None
    error = ProxyError(exc.status_code, message, code=code, headers=exc.headers)
    return await proxy_error(request, error)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client left before its answer was complete: its doing, not ours."""
    request_context(request.scope).log.error_type = "client_disconnected"
    return Response(status_code=CLIENT_CLOSED)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    fields = request_context(request.scope).log
    fields.error_type = "internal_error"
    log.exception("unexpected error", extra={"request_id": fields.request_id})
    return error_response(
        ProxyError(500, "The server had an error processing your request.", type=SERVER_ERROR),
        request,
    )


# Most specific first: `handle_error` takes the first that matches.
HANDLERS: dict[type[Exception], ErrorHandler] = {
    ProxyError: proxy_error,
    AnthropicError: anthropic_error,
    HTTPException: http_error,
    FalError: upstream_error,
    ClientDisconnect: client_gone,
    ClientGone: client_gone,
    Exception: unexpected_error,
}


async def handle_error(request: Request, exc: Exception) -> Response:
    """The same mapping as Starlette's exception handlers, for the directly served routes."""
    for kind, handler in HANDLERS.items():
        if isinstance(exc, kind):
            return await handler(request, exc)
    raise exc  # unreachable: Exception matches everything
