"""Pure ASGI middleware (no BaseHTTPMiddleware: it buffers and slows streams).

RequestLog: request id, one JSON log line and metrics per request.
Guard: the Host check on every route; on the routes that take a client's key (the registry's
`Auth.CLIENT`, and any unknown /v1/ path) draining, cross-site requests, the content type,
client auth, body size and time, per-client limits, and room for multipart bodies
(upload_gate.py); on `Auth.INFO` routes (metrics, the API's documentation) the client key when
REQUIRE_KEY_FOR_METRICS_AND_DOCS asks for it. Refusals sent before a request's body was read
say `Connection: close` (connection.py discards the rest, then closes).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..anthropic.errors import from_proxy_error, wants_anthropic_errors
from ..base.metrics import Metrics
from ..fal.proxy_protocol import error_body as fal_error_body
from ..openai.errors import AUTHENTICATION, PERMISSION, ProxyError, unavailable
from ..routes.registry import Auth, Body, Endpoint, EndpointIndex, Protocol
from .console_auth import ConsoleAuth
from .context import Client, RequestContext, clip, new_context, request_context
from .state import ProxyState
from .upload_gate import UploadGate

access_log = logging.getLogger("fal_openai_proxy.access")
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})  # probed often: metrics, no log line


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, endpoints: EndpointIndex) -> None:
        self.app = app
        self.metrics = metrics
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        request_id = request_id[:128]
        context = new_context(scope, request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, context, status, time.perf_counter() - started)

    def _record(self, scope: Scope, context: RequestContext, status: int, seconds: float) -> None:
        fields, usage = context.log, context.usage
        path = scope["path"]
        endpoint = self._endpoints.find(scope["method"], path)
        route = endpoint.template if endpoint is not None else "other"  # a bounded label
        self.metrics.requests.labels(route, fields.model_label, str(status)).inc()
        self.metrics.latency.labels(route).observe(seconds)
        if route in _QUIET:
            return
        access_log.info(
            "request",
            extra={
                "request_id": fields.request_id,
                "method": scope["method"],
                "path": clip(path),
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "model": clip(fields.model),
                "stream": fields.stream,
                "route": fields.route,
                "fal_request_id": clip(fields.fal_request_id),
                "error_type": fields.error_type,
                "cost": usage.cost,  # USD; null: unknown
                "cost_source": usage.cost_source,
            },
        )


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, state: ProxyState) -> None:
        self.app = app
        self._state = state
        settings = state.settings
        self._api_keys = [k.encode() for k in settings.api_keys]
        self._pass_through = settings.pass_through
        self._max_body = settings.max_body_bytes
        self._body_timeout = settings.body_timeout
        self._limiter = state.limiter
        self._endpoints = state.endpoints
        # A console session counts as a client too (the playground calls the API with it).
        self._console: ConsoleAuth | None = state.console if state.console.enabled else None
        self._uploads = UploadGate(settings.max_upload_bytes_in_flight)
        self._info_need_key = settings.info_endpoints_need_key
        hosts = settings.allowed_host_list
        self._hosts = None if hosts is None else frozenset(hosts)
        origins = settings.cors_origin_list
        self._any_origin = "*" in origins
        self._origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = self._endpoints.find(scope["method"], path)
        if endpoint is not None:
            request_context(scope).usage.endpoint = endpoint.template
            auth = endpoint.auth
        else:
            auth = Auth.CLIENT if path.startswith("/v1/") else Auth.PUBLIC
        if auth is Auth.PUBLIC or auth is Auth.INFO:
            if self._hosts is not None and not self._host_allowed(scope):
                await send_error(send, _misdirected())
                return
            if auth is Auth.INFO and self._info_need_key:  # REQUIRE_KEY_FOR_METRICS_AND_DOCS
                token = _bearer(scope)
                if _match_key(token, self._api_keys) is None:
                    await send_error(send, _auth_error(token))
                    return
            await self.app(scope, receive, send)
            return
        if auth is Auth.ADMIN:
            await self._admin(scope, receive, send, endpoint)
            return
        try:
            client = self._check(scope, endpoint)
            if self._limiter.active:
                await self._limiter.admit(client)
        except ProxyError as exc:
            request_context(scope).log.error_type = exc.code or exc.type
            exc = _closing_if_body_unread(scope, exc)
            await send_error(send, exc, _refusal_body(scope, endpoint, exc))
            return
        self._state.in_flight += 1
        reserved = 0
        try:
            if endpoint is not None and endpoint.body is Body.MULTIPART:
                try:
                    reserved = await self._reserve_upload(scope)
                except ProxyError as exc:  # no room for the upload in time
                    request_context(scope).log.error_type = exc.code or exc.type
                    exc = _closing_if_body_unread(scope, exc)
                    await send_error(send, exc, _refusal_body(scope, endpoint, exc))
                    return
            await self.app(scope, self._limited(receive), send)
        finally:
            if reserved:
                self._uploads.release(reserved)
            self._state.in_flight -= 1
            if self._limiter.active:
                self._limiter.done(client)

    async def _admin(
        self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint | None
    ) -> None:
        """The admin API: ADMIN_KEY or a console session, a JSON body, the body limits."""
        try:
            if self._hosts is not None and not self._host_allowed(scope):
                raise _misdirected()
            length = _header(scope, b"content-length")
            if length and length.isdigit() and int(length) > self._max_body:
                raise _too_large(self._max_body)
            has_body = length not in (None, "0") or _header(scope, b"transfer-encoding") is not None
            if scope["method"] != "GET" and has_body and endpoint is not None:
                _check_content_type(scope, endpoint.body)
            self._state.console.authorize_admin(scope)
        except ProxyError as exc:
            request_context(scope).log.error_type = exc.code or exc.type
            await send_error(send, exc)
            return
        await self.app(scope, self._limited(receive), send)

    async def _reserve_upload(self, scope: Scope) -> int:
        """Room for a multipart body before it is read (upload_gate.py). The wait is half of
        BODY_TIMEOUT: the body must still arrive within the rest (connection.py)."""
        length = _header(scope, b"content-length")
        size = int(length) if length and length.isdigit() else self._max_body
        return await self._uploads.acquire(size, self._body_timeout / 2)

    def _check(self, scope: Scope, endpoint: Endpoint | None) -> str:
        """Refuse early; return the client's identity for limits (never a raw key)."""
        if self._hosts is not None and not self._host_allowed(scope):
            raise _misdirected()
        if self._state.draining:
            raise unavailable("The server is shutting down; retry on another instance.")
        origin = _header(scope, b"origin")
        if origin is not None and not self._origin_allowed(scope, origin):
            raise ProxyError(
                403,
                "Cross-origin requests from this origin are not allowed (see CORS_ORIGINS).",
                type=PERMISSION,
                code="origin_not_allowed",
            )
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > self._max_body:
            raise _too_large(self._max_body)
        has_body = length not in (None, "0") or _header(scope, b"transfer-encoding") is not None
        body = endpoint.body if endpoint is not None else Body.NONE
        if scope["method"] != "GET" and has_body and body is not Body.ANY:
            _check_content_type(scope, body)  # a bodiless request carries nothing to forge
        context = request_context(scope)
        protocol = _protocol(scope, endpoint)
        context.client = client = self._identify(scope, context.client, protocol)
        return client.id

    def _identify(
        self, scope: Scope, client: Client, protocol: Protocol = Protocol.OPENAI
    ) -> Client:
        """Who is calling, from the key they sent; a 401 for a missing or wrong key. fal's
        own clients may also send the key as `x-api-key`, and their fal key as
        `Authorization: Key …` in pass-through mode (docs/fal-proxy.md); Anthropic's send it
        as `x-api-key` (docs/anthropic.md)."""
        token = _bearer(scope)
        if protocol is Protocol.FAL:
            token = _fal_client_token(scope, token, pass_through=self._pass_through)
        elif protocol is Protocol.ANTHROPIC and not token:
            token = (_header(scope, b"x-api-key") or "").strip() or None
        # The console's own calls (its playground): the admin's session, CSRF-checked.
        console = self._console
        if (
            not token
            and console is not None
            and not self._pass_through
            and console.api_session(scope)
        ):
            client.kind, client.id = "console", "console"
            return client
        if self._api_keys:
            index = _match_key(token, self._api_keys)
            if index is None:
                raise _auth_error(token)
            client.kind, client.id = "static", f"key-{index}"
        elif self._pass_through:
            if not token:
                raise _auth_error(token)
            request_context(scope).fal_key = token
            client.kind = "passthrough"
            client.id = "fal-" + hashlib.sha256(token.encode()).hexdigest()[:16]
        else:
            address = scope.get("client")
            client.kind, client.id = "open", f"ip-{address[0]}" if address else "anonymous"
        return client

    def _host_allowed(self, scope: Scope) -> bool:
        host = _header(scope, b"host")
        if host is None:
            return True  # HTTP/1.0 without Host: not a browser, so not a rebinding page
        assert self._hosts is not None
        return _host_name(host) in self._hosts

    def _origin_allowed(self, scope: Scope, origin: str) -> bool:
        if self._any_origin or origin in self._origins:
            return True
        # Same-origin (a page served by this very host and port) is not cross-site.
        host = _header(scope, b"host")
        return host is not None and origin.partition("://")[2] == host

    def _limited(self, receive: Receive) -> Receive:
        """Body size and time limits, until the body is complete."""
        seen = 0
        deadline: float | None = None
        complete = False

        async def receive_limited() -> Message:
            nonlocal seen, deadline, complete
            if complete:
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self._body_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise ProxyError(
                    408,
                    f"The request body was not received within {self._body_timeout:g} s.",
                    code="request_timeout",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._max_body:
                    error = _too_large(self._max_body)
                    error.headers["Connection"] = "close"  # the rest of the body is unread
                    raise error
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        return receive_limited


async def send_error(send: Send, exc: ProxyError, body: bytes | None = None) -> None:
    """`exc` in OpenAI's shape, or as `body` (another protocol's shape of it)."""
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": exc.json() if body is None else body})


def _protocol(scope: Scope, endpoint: Endpoint | None) -> Protocol:
    """Whose client is calling: the endpoint's protocol; for an OpenAI-side path, Anthropic's
    when the client sends `anthropic-version` (the anthropic SDK's `models.list()`), or for
    an unknown path under /v1/messages."""
    if endpoint is not None and endpoint.protocol is not Protocol.OPENAI:
        return endpoint.protocol
    return Protocol.ANTHROPIC if wants_anthropic_errors(scope) else Protocol.OPENAI


def _refusal_body(scope: Scope, endpoint: Endpoint | None, exc: ProxyError) -> bytes | None:
    """A refusal in the caller's protocol's shape (None: OpenAI's)."""
    protocol = _protocol(scope, endpoint)
    if protocol is Protocol.FAL:
        return fal_error_body(exc.message)
    if protocol is Protocol.ANTHROPIC:
        return from_proxy_error(exc).json()
    return None


def _fal_client_token(scope: Scope, bearer: str | None, *, pass_through: bool) -> str | None:
    """The key a fal client sends: `Bearer`, or `x-api-key` (which fal's client never sends
    itself, so it cannot clash with a fal key the client also sends); in pass-through mode its
    own fal key as `Authorization: Key …`, as fal's clients send it."""
    if bearer:
        return bearer
    api_key = (_header(scope, b"x-api-key") or "").strip()
    if api_key:
        return api_key
    fal_key = _key_scheme(scope)
    if fal_key and not pass_through:
        raise ProxyError(
            401,
            "This proxy holds the fal keys: send the proxy's own key (as 'Authorization: "
            "Bearer <key>' or 'x-api-key'), not a fal key.",
            type=AUTHENTICATION,
            code="invalid_api_key",
        )
    return fal_key


def _closing_if_body_unread(scope: Scope, exc: ProxyError) -> ProxyError:
    """An answer sent before the request's body was read closes the connection (the rest of
    the body is discarded, then the connection closed: connection.py); `Connection: close`
    tells the client not to send another request on it."""
    length = _header(scope, b"content-length")
    if length not in (None, "0") or _header(scope, b"transfer-encoding") is not None:
        exc.headers["Connection"] = "close"
    return exc


def _match_key(token: str | None, keys: list[bytes]) -> int | None:
    """Constant-time comparison against every key (no early exit on a match)."""
    given = (token or "").encode()
    match = None
    for index, key in enumerate(keys):
        if hmac.compare_digest(given, key) and match is None:
            match = index
    return match


def _auth_error(token: str | None) -> ProxyError:
    if not token:
        return ProxyError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
            "(or 'x-api-key: <key>').",
            type=AUTHENTICATION,
            code="missing_api_key",
        )
    return ProxyError(
        401, "Incorrect API key provided.", type=AUTHENTICATION, code="invalid_api_key"
    )


def _check_content_type(scope: Scope, body: Body) -> None:
    """Multipart where the endpoint takes it, JSON everywhere else: a browser page can send
    text/plain or a form to localhost without a CORS preflight, but not application/json."""
    value = (_header(scope, b"content-type") or "").partition(";")[0].strip().lower()
    wanted = str(Body.MULTIPART if body is Body.MULTIPART else Body.JSON)
    if value != wanted:
        raise ProxyError(
            415,
            f"Unsupported Content-Type {value or '(none)'!r}: this endpoint takes {wanted}.",
            code="unsupported_media_type",
        )


def _host_name(host: str) -> str:
    """'Example.com:3000' -> 'example.com'; '[::1]:3000' -> '[::1]'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


def _misdirected() -> ProxyError:
    return ProxyError(
        421,
        "This server does not serve the host named in the request (see ALLOWED_HOSTS).",
        code="host_not_allowed",
    )


def _too_large(limit: int) -> ProxyError:
    return ProxyError(
        413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large"
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


def _key_scheme(scope: Scope) -> str | None:
    """`Authorization: Key <fal key>`, the scheme of fal's clients (docs/fal-protocol.md §2)."""
    value = _header(scope, b"authorization")
    if value and value[:4].lower() == "key ":
        return value[4:].strip() or None
    return None
