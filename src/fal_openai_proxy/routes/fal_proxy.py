"""`/api/fal/proxy`: fal's own clients (`fal.config({proxyUrl})`), served in fal's
server-proxy protocol by the fal proxy service (docs/fal-proxy.md)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..fal.proxy_protocol import PROXY_PATH, TARGET_HEADER
from ..serve.context import request_context
from ..serve.state import proxy_state
from .registry import Body, Endpoint, Operation, Protocol


async def fal_proxy(request: Request) -> Response:
    service = proxy_state(request).services.fal_proxy
    return await service.handle(request, request_context(request.scope))


_ERRORS = {
    400: f"`{TARGET_HEADER}` missing, or not a URL fal's server proxy forwards (nothing is sent).",
    401: "Missing or wrong client key (`Bearer`, `x-api-key`; `Key <fal key>` in pass-through).",
    403: "An app outside FAL_PROXY_ALLOWED_APPS or the key's models; a foreign `Origin`.",
    404: "A follow-up of a request another key submitted.",
    413: "Body over MAX_BODY_BYTES.",
    429: "A per-client limit, or every fal key busy; see `Retry-After`.",
    502: "fal refused the server's keys, failed, or could not be reached.",
    504: "fal did not answer in time.",
}


def _operation(calls: str) -> Operation:
    # The example carries no target: the documented answer to it is the 400.
    return Operation(
        f"fal's own clients (`fal.config({{proxyUrl}})`): {calls}. The fal URL is in "
        f"`{TARGET_HEADER}`; fal's answer comes back unchanged (any status and type), "
        "streamed. See docs/fal-proxy.md.",
        responses=_ERRORS,
        status=400,
    )


# The methods fal's client sends: POST to start work and to upload, GET for status and
# result, PUT for cancel (docs/fal-protocol.md §13.1). Bodies are JSON, as fal's client sends.
ROUTES = [
    Endpoint("POST", PROXY_PATH, fal_proxy,
             _operation("run (`fal.run/…`), stream (`…/stream`), queue submit, storage upload"),
             body=Body.JSON, protocol=Protocol.FAL),
    Endpoint("GET", PROXY_PATH, fal_proxy,
             _operation("queue status, status stream and result"), protocol=Protocol.FAL),
    Endpoint("PUT", PROXY_PATH, fal_proxy, _operation("queue cancel"), protocol=Protocol.FAL),
]  # fmt: skip
