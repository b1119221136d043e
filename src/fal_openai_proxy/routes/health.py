"""Liveness, readiness and metrics: no key needed, no secrets shown."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..serve.state import proxy_state
from .registry import Auth, Endpoint, Operation


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if proxy_state(request).draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    body = proxy_state(request).upstream.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


ROUTES = [
    Endpoint("GET", "/healthz", healthz, Operation("200 while the process is up."),
             auth=Auth.PUBLIC),
    Endpoint("GET", "/readyz", readyz,
             Operation("200 while serving; 503 once draining.", responses={503: "Draining."}),
             auth=Auth.PUBLIC),
    Endpoint("GET", "/metrics", metrics,
             Operation("Prometheus metrics.", media_types=("text/plain",)), auth=Auth.INFO),
]  # fmt: skip
