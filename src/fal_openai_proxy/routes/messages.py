"""POST /v1/messages and POST /v1/messages/count_tokens: Anthropic's Messages API.

Failures are raised; the app's one error mapping (serve/errors.py) answers them in
Anthropic's shape for these paths (anthropic/errors.py, `wants_anthropic_errors`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..anthropic.messages import CountTokensRequest, MessagesRequest
from ..serve.context import request_context
from ..serve.state import proxy_state
from .errors import ERRORS, SSE
from .registry import Body, Endpoint, Operation, Protocol


async def create_message(request: Request) -> Response:
    service = proxy_state(request).services.messages
    body = await request.body()
    return await service.create(body, request_context(request.scope), request.receive)


async def count_message_tokens(request: Request) -> Response:
    service = proxy_state(request).services.messages
    return await service.count_tokens(await request.body(), request_context(request.scope))


_EXAMPLE = {"model": "anthropic/claude-sonnet-4.5", "max_tokens": 256,
            "messages": [{"role": "user", "content": "Hi"}]}  # fmt: skip
MESSAGES_ERRORS = {**ERRORS, 529: "The model provider is overloaded (Anthropic's status)."}
MESSAGES_ERRORS.pop(404)

ROUTES = [
    Endpoint(
        "POST", "/v1/messages", create_message,
        Operation(
            "Anthropic's Messages API, streaming (`\"stream\": true`: Anthropic's events) or "
            "not; errors in Anthropic's shape (docs/anthropic.md).",
            request=MessagesRequest,
            example=_EXAMPLE,
            responses=MESSAGES_ERRORS,
            media_types=SSE,
        ),
        body=Body.JSON,
        protocol=Protocol.ANTHROPIC,
    ),
    Endpoint(
        "POST", "/v1/messages/count_tokens", count_message_tokens,
        Operation(
            "An estimate of a Messages request's input tokens (a tokenizer shipped with the "
            "proxy, not Claude's own).",
            request=CountTokensRequest,
            example={k: v for k, v in _EXAMPLE.items() if k != "max_tokens"},
            responses={s: ERRORS[s] for s in (400, 401, 413, 429)},
        ),
        body=Body.JSON,
        protocol=Protocol.ANTHROPIC,
    ),
]  # fmt: skip
