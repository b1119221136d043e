"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..serve.state import proxy_state
from .errors import ERRORS
from .registry import Endpoint, Operation


async def list_models(request: Request) -> Response:
    data = proxy_state(request).services.catalog.list()
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def retrieve_model(request: Request) -> Response:
    model = proxy_state(request).services.catalog.get(request.path_params["model_id"])
    return Response(orjson.dumps(model), media_type="application/json")


ROUTES = [
    Endpoint(
        "GET", "/v1/models", list_models,
        Operation("The model catalog, in OpenAI's list shape.", responses={401: ERRORS[401]}),
    ),
    Endpoint(
        "GET", "/v1/models/{model_id:path}", retrieve_model,
        Operation(
            "One model; ids contain `/`.",
            responses={401: ERRORS[401], 404: ERRORS[404]},
            path_example={"model_id": "google/gemini-2.5-flash"},
        ),
    ),
]  # fmt: skip
