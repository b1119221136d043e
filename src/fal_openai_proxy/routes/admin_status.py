"""The admin API's read endpoints for what the accounts API does not cover (docs/console.md):
GET /admin/overview (traffic, the fal key pool, Redis and the database) and GET /admin/models
(every model with its kind, route and fal app)."""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from ..serve.state import proxy_state
from ..services.model_table import model_table
from .registry import Auth, Endpoint, Operation

ADMIN_ERRORS = {
    401: "Missing or wrong ADMIN_KEY (or console session).",
    403: "The admin API is off: ADMIN_KEY is not set.",
}
NO_STORE = {"Cache-Control": "no-store"}


def admin_json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=NO_STORE)


# -- what the endpoints answer (their schemas in /openapi.json) --------------------------------


class Traffic(BaseModel):
    """This process's client requests (/v1/ and /api/), from its metrics."""

    requests_per_minute: float | None = Field(description="Over the last minute.")
    window_seconds: float = Field(description="What `requests`, `error_rate` and the latencies "
                                  "cover: the last five minutes, or since the start.")  # fmt: skip
    requests: int
    error_rate: float | None = Field(description="Share answered with a status of 400 or more.")
    latency_p50_ms: float | None = Field(description="Interpolated in the latency histogram.")
    latency_p99_ms: float | None
    in_flight: int = Field(description="Requests being served now.")
    streams: int = Field(description="Streams open now.")


class Today(BaseModel):
    """The UTC day so far, every replica's (from the accounts database)."""

    cost: float = Field(description="USD, where known.")
    requests: int


class PoolKey(BaseModel):
    """One of the server's fal keys (FAL_KEY), never the key itself."""

    index: int
    fingerprint: str = Field(description="`sha256:` and the first 12 hex digits of the key's "
                             "SHA-256.")  # fmt: skip
    state: Literal["healthy", "benched"]
    benched_until: int | None = Field(description="Unix time the key is used again.")
    bench_reason: Literal["auth", "rate_limited"] | None
    limit: int | None = Field(description="Requests it may have in flight; null: none known.")
    limit_learned: bool = Field(description="Learned from fal's 429s (FAL_KEY_CONCURRENCY=auto).")
    in_flight: int


class Overview(BaseModel):
    object: Literal["overview"]
    version: str
    uptime_seconds: int
    traffic: Traffic
    today: Today | None = Field(description="null: no accounts database.")
    mode: Literal["pool", "passthrough"]
    keys: list[PoolKey]
    redis: Literal["up", "down", "off"]
    database: Literal["up", "down", "off"]


class ModelRow(BaseModel):
    id: str
    kind: Literal["chat", "image", "edit", "transcription", "speech", "video"]
    route: str = Field(description="The HTTP route that serves it.")
    model_route: Literal["prompt", "openai", "auto"] | None = Field(
        description="Chat models: the MODEL_ROUTES choice (`auto`: the prompt app unless a "
        "request needs fal's OpenAI-compatible route)."
    )
    fal_app: str = Field(description="The fal app its requests go to.")
    owned_by: str


class ModelTable(BaseModel):
    object: Literal["list"]
    data: list[ModelRow]


# -- handlers ------------------------------------------------------------------------------


async def overview(request: Request) -> Response:
    state = proxy_state(request)
    body = await state.services.overview.overview(
        in_flight=state.in_flight, streams=len(state.open_streams)
    )
    return admin_json(body)


async def models(request: Request) -> Response:
    services = proxy_state(request).services
    rows = model_table(services.catalog, services.router, proxy_state(request).settings)
    return admin_json({"object": "list", "data": rows})


ROUTES = [
    Endpoint("GET", "/admin/overview", overview,
             Operation("Now: this process's traffic (requests per minute, error rate, p50/p99 "
                       "latency), the day's cost, each fal key's state, Redis and the database.",
                       response=Overview, responses=ADMIN_ERRORS),
             auth=Auth.ADMIN),
    Endpoint("GET", "/admin/models", models,
             Operation("Every model served, with its kind, its route and its fal app.",
                       response=ModelTable, responses=ADMIN_ERRORS),
             auth=Auth.ADMIN),
]  # fmt: skip
