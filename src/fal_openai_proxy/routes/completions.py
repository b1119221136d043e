"""POST /v1/completions: OpenAI's legacy text completions, on fal's prompt apps."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..openai.completions import CompletionRequest, parse_completion_body
from ..serve.context import request_context
from ..serve.state import proxy_state
from .errors import ERRORS, SSE
from .registry import Body, Endpoint, Operation


async def create_completion(request: Request) -> Response:
    parsed = parse_completion_body(await request.body())
    service = proxy_state(request).services.completions
    return await service.create(parsed, request_context(request.scope), request.receive)


ROUTES = [
    Endpoint(
        "POST", "/v1/completions", create_completion,
        Operation(
            "Legacy text completion (OpenAI's `text_completion`) on fal's prompt apps, "
            "streaming or not; `suffix`, `n` > 1, `best_of` > 1, `logprobs` and `echo` are "
            "refused with a 400.",
            request=CompletionRequest,
            example={"model": "google/gemini-2.5-flash", "prompt": "def fibonacci(n):",
                     "max_tokens": 64},
            responses=dict(ERRORS),
            media_types=SSE,
        ),
        body=Body.JSON,
    ),
]  # fmt: skip
