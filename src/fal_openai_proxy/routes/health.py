"""Liveness, readiness and metrics: no key needed, no secrets shown."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..state import proxy_state


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if proxy_state(request).draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    body = proxy_state(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
