"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..state import proxy_state


async def list_models(request: Request) -> Response:
    data = proxy_state(request).catalog.list()
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def retrieve_model(request: Request) -> Response:
    model = proxy_state(request).catalog.get(request.path_params["model_id"])
    return Response(orjson.dumps(model), media_type="application/json")
