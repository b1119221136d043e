"""`/api/fal/proxy`: fal's own clients (`fal.config({proxyUrl})`), served by the fal proxy
service in fal's protocol (docs/fal-proxy.md)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..context import request_context
from ..fal.proxy_protocol import PROXY_PATH
from ..state import proxy_state

# The methods fal's client sends: GET for status and result, PUT for cancel
# (docs/fal-protocol.md §13.1); others get 405.
METHODS = ["GET", "POST", "PUT"]

__all__ = ["METHODS", "PROXY_PATH", "fal_proxy"]


async def fal_proxy(request: Request) -> Response:
    service = proxy_state(request).fal_proxy
    assert service is not None
    response: Response = await service.handle(request, request_context(request.scope))
    return response
