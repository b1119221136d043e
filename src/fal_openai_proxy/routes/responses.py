"""POST /v1/responses (fal's OpenAI route), and a clear 404 for what needs stored state."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..openai.errors import ProxyError
from ..openai.responses import ResponsesRequest, parse_responses_request
from ..serve.context import request_context
from ..serve.state import proxy_state
from .errors import ERRORS, OPENROUTER_ERRORS, SSE
from .registry import Body, Endpoint, Operation


async def create_response(request: Request) -> Response:
    parsed = parse_responses_request(await request.body())
    service = proxy_state(request).services.responses
    return await service.create(parsed, request_context(request.scope), request.receive)


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


_NOT_STORED = {
    401: ERRORS[401],
    404: "`response_not_found`: responses are never stored (the Responses API is stateless).",
}


def _not_stored(method: str, summary: str) -> Endpoint:
    operation = Operation(
        summary, responses=_NOT_STORED, status=404, path_example={"response_id": "resp_123"}
    )
    return Endpoint(method, "/v1/responses/{response_id:path}", stored_response, operation)


ROUTES = [
    Endpoint(
        "POST", "/v1/responses", create_response,
        Operation(
            "The Responses API on fal's OpenAI route, streaming (server-sent events with "
            "`event:` lines) or not. Stateless: nothing is stored.",
            request=ResponsesRequest,
            example={"model": "openai/gpt-4.1", "input": "Hi"},
            responses=OPENROUTER_ERRORS,
            media_types=SSE,
        ),
        body=Body.JSON,
    ),
    _not_stored("GET", "Retrieve a response: always 404, as no response is stored."),
    _not_stored("DELETE", "Delete a response: always 404, as no response is stored."),
    _not_stored(
        "POST", "`POST /v1/responses/{id}/cancel`: always 404, as no response is stored."
    ),
]  # fmt: skip
