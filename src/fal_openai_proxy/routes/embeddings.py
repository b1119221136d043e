"""POST /v1/embeddings (always fal's OpenAI route)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..openai.embeddings import EmbeddingsRequest, parse_embeddings_request
from ..serve.context import request_context
from ..serve.state import proxy_state
from .errors import OPENROUTER_ERRORS
from .registry import Body, Endpoint, Operation


async def create_embeddings(request: Request) -> Response:
    parsed = parse_embeddings_request(await request.body())
    service = proxy_state(request).services.embeddings
    return await service.create(parsed, request_context(request.scope), request.receive)


ROUTES = [
    Endpoint(
        "POST", "/v1/embeddings", create_embeddings,
        Operation(
            "Embeddings on fal's OpenAI route.",
            request=EmbeddingsRequest,
            example={"model": "openai/text-embedding-3-small", "input": ["a", "b"]},
            responses=OPENROUTER_ERRORS,
        ),
        body=Body.JSON,
    ),
]  # fmt: skip
