"""GET /v1/models and GET /v1/models/{id}: OpenAI's shape, or Anthropic's for a client that
sends `anthropic-version` (translate/anthropic_models.py)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..openai.errors import invalid_request
from ..state import proxy_state
from ..translate.anthropic_models import MAX_LIMIT, model_info, model_page

ANTHROPIC_VERSION = "anthropic-version"


async def list_models(request: Request) -> Response:
    data = proxy_state(request).catalog.list()
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
    model = proxy_state(request).catalog.get(request.path_params["model_id"])
    if ANTHROPIC_VERSION in request.headers:
        return _json(model_info(model))
    return _json(model)


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise invalid_request(f"limit: must be an integer from 1 to {MAX_LIMIT}.", "limit")
    return int(value)


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
