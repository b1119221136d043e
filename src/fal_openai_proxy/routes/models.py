"""GET /v1/models and GET /v1/models/{id}: OpenAI's shape, or Anthropic's for a client that
sends `anthropic-version` (translate/anthropic_models.py)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..openai.errors import invalid_request
from ..serve.state import proxy_state
from ..translate.anthropic_models import DEFAULT_LIMIT, MAX_LIMIT, model_info, model_page
from .errors import ERRORS
from .registry import Endpoint, Operation

ANTHROPIC_VERSION = "anthropic-version"


async def list_models(request: Request) -> Response:
    data = proxy_state(request).services.catalog.list()
    if ANTHROPIC_VERSION in request.headers:
        query = request.query_params
        page = model_page(
            data,
            limit=_limit(query.get("limit")),
            after_id=query.get("after_id"),
            before_id=query.get("before_id"),
        )
        return _json(page)
    return _json({"object": "list", "data": data})


async def retrieve_model(request: Request) -> Response:
    model = proxy_state(request).services.catalog.get(request.path_params["model_id"])
    if ANTHROPIC_VERSION in request.headers:
        return _json(model_info(model))
    return _json(model)


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise invalid_request(f"limit: must be an integer from 1 to {MAX_LIMIT}.", "limit")
    return int(value)


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


ROUTES = [
    Endpoint(
        "GET", "/v1/models", list_models,
        Operation(
            "The model catalog, in OpenAI's list shape; in Anthropic's (`ModelInfo` pages: "
            "`limit`, `after_id`, `before_id`) when the request sends `anthropic-version`.",
            responses={401: ERRORS[401]},
        ),
    ),
    Endpoint(
        "GET", "/v1/models/{model_id:path}", retrieve_model,
        Operation(
            "One model; ids contain `/`. Anthropic's `ModelInfo` with `anthropic-version`.",
            responses={401: ERRORS[401], 404: ERRORS[404]},
            path_example={"model_id": "google/gemini-2.5-flash"},
        ),
    ),
]  # fmt: skip
