"""The one registry of HTTP endpoints.

Each family module (`routes/chat.py`, `routes/images.py`, …) exports `ROUTES`, a list of
`Endpoint`s: the method and path, the handler, its OpenAPI operation, the body it takes and who
may call it. `routes/__init__.py` joins the lists; the app builds its router from them, the
middleware its content-type, auth and metrics-label rules, and `/openapi.json` its paths. No
other list of paths exists.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]
JSON = "application/json"
_PARAM = re.compile(r"\{(\w+)(:\w+)?\}")


class Body(StrEnum):
    """What a request's body is; the middleware refuses any other content type with 415."""

    NONE = "none"  # no body (a body, if sent anyway, must be JSON)
    JSON = JSON
    MULTIPART = "multipart/form-data"
    JSON_OR_MULTIPART = "json-or-multipart"  # either (videos.create: the SDK sends a form)
    ANY = "any"  # passed on unread, whatever its type


class Protocol(StrEnum):
    """Whose client calls an endpoint: the shape of the guard's refusals, and how it sends
    its key."""

    OPENAI = "openai"  # `{"error": {...}}`; `Authorization: Bearer`
    FAL = "fal"  # fal's own clients: `{"detail", "message"}`; also `x-api-key`, `Key …`
    ANTHROPIC = "anthropic"  # Anthropic's clients: `{"type": "error", ...}`; also `x-api-key`


class Auth(StrEnum):
    """Who may call an endpoint."""

    CLIENT = "client"  # API_KEY, a virtual key, a fal key in pass-through mode, or nobody
    PUBLIC = "public"  # anyone (the health checks, the console's page and its sign-in)
    # Anyone, unless REQUIRE_KEY_FOR_METRICS_AND_DOCS with a non-loopback HOST: then API_KEY
    # (metrics, the API's own documentation)
    INFO = "info"
    # `Authorization: Bearer <ADMIN_KEY>`, or a console session with its CSRF token
    # (serve/console_auth.py); 403 while ADMIN_KEY is unset.
    ADMIN = "admin"


@dataclass(frozen=True)
class Operation:
    """An endpoint as /openapi.json and /docs describe it."""

    summary: str
    request: type[BaseModel] | None = None
    example: dict[str, Any] | None = None  # a request body the server accepts
    responses: dict[int, str] = field(default_factory=dict)  # error statuses
    media_types: tuple[str, ...] = (JSON,)  # of the answer to `example`
    path_example: dict[str, str] = field(default_factory=dict)  # path parameters, for tests
    status: int = 200  # the answer to `example`: 404 for responses that are never stored
    response: type[BaseModel] | None = None  # the JSON answer's shape, when it is one of ours


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # Starlette's syntax: `/v1/models/{model_id:path}`
    handler: Handler
    operation: Operation
    body: Body = Body.NONE
    auth: Auth = Auth.CLIENT
    protocol: Protocol = Protocol.OPENAI
    # Served by the app's dispatcher without Starlette's router and exception layers: a
    # long stream would otherwise keep every layer's frame alive (~10 KB per open stream).
    direct: bool = False
    # Whether a call can spend a virtual key's budget: a key whose budget is spent is still
    # answered on the endpoints that cost nothing (reading back the videos it paid for).
    spends: bool = True

    @functools.cached_property
    def template(self) -> str:
        """The path as OpenAPI writes it (also the bounded metrics label); computed once, as
        every request reads it."""
        return _PARAM.sub(r"{\1}", self.path)

    @property
    def parameters(self) -> list[str]:
        return [name for name, _ in _PARAM.findall(self.path)]


class EndpointIndex:
    """Finds the endpoint of a request's path: a dict lookup for fixed paths (the hot ones),
    then the patterns of paths with parameters."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self.endpoints = list(endpoints)
        self._fixed: dict[tuple[str, str], Endpoint] = {}
        self._fixed_paths: dict[str, Endpoint] = {}
        self._patterns: list[tuple[re.Pattern[str], Endpoint]] = []
        for endpoint in self.endpoints:
            key = (endpoint.method, endpoint.path)
            if key in self._fixed or any(e.method == endpoint.method and e.path == endpoint.path
                                         for _, e in self._patterns):  # fmt: skip
                raise ValueError(f"{endpoint.method} {endpoint.path} is registered twice")
            if endpoint.parameters:
                self._patterns.append((_compile(endpoint.path), endpoint))
            else:
                self._fixed[key] = endpoint
                self._fixed_paths.setdefault(endpoint.path, endpoint)

    def find(self, method: str, path: str) -> Endpoint | None:
        """The endpoint for `method` on `path`, else one on that path with another method
        (its rules still apply: a wrong method is answered 405 by the router)."""
        endpoint = self._fixed.get((method, path))
        if endpoint is not None:
            return endpoint
        other = None
        for pattern, candidate in self._patterns:
            if pattern.fullmatch(path):
                if candidate.method == method:
                    return candidate
                other = other or candidate
        return other or self._fixed_paths.get(path)


def _compile(path: str) -> re.Pattern[str]:
    regex, last = "", 0
    for match in _PARAM.finditer(path):
        regex += re.escape(path[last : match.start()])
        regex += ".+" if match.group(2) == ":path" else "[^/]+"
        last = match.end()
    return re.compile(regex + re.escape(path[last:]))
