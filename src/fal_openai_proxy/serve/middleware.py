"""Pure ASGI middleware (no BaseHTTPMiddleware: it buffers and slows streams).

RequestLog: request id, one JSON log line and metrics per request, and (DATABASE_URL) the
request's usage handed to the accounts' writer.
Guard: the Host check on every route; on the routes that take a client's key (the registry's
`Auth.CLIENT`, and any unknown /v1/ path) draining, cross-site requests, the content type,
client auth (API_KEY, virtual keys, pass-through), body size and time, per-client limits, and
room for multipart bodies (upload_gate.py); on the admin API's routes (`Auth.ADMIN`) the same
checks with ADMIN_KEY; on `Auth.INFO` routes (metrics, the API's documentation) the client key when
REQUIRE_KEY_FOR_METRICS_AND_DOCS asks for it. Refusals sent before a request's body was read
say `Connection: close` (connection.py discards the rest, then closes).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..anthropic.errors import from_proxy_error, wants_anthropic_errors
from ..base.logs import AccessLog
from ..base.metrics import Metrics
from ..base.watchdog import Watchdog
from ..fal.proxy_protocol import error_body as fal_error_body
from ..openai.errors import AUTHENTICATION, PERMISSION, ProxyError, unavailable
from ..routes.registry import Auth, Body, Endpoint, EndpointIndex, Protocol
from ..store.accounts import looks_virtual
from .accounting import KEY_PATH, Accounts
from .console_auth import ConsoleAuth
from .context import RequestContext, clip, new_context, request_context
from .state import ProxyState
from .upload_gate import UploadGate

access_log = AccessLog("fal_openai_proxy.access")
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})  # probed often: metrics, no log line


class RequestLogMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        endpoints: EndpointIndex,
        accounts: Accounts | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._endpoints = endpoints
        self._accounts = accounts  # DATABASE_URL: every identified request's usage is recorded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id")
        request_id = request_id[:128] if request_id else os.urandom(16).hex()  # as uuid4().hex
        context = new_context(scope, request_id)
        accounts = self._accounts
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if accounts is not None:
                    context.usage.first_byte_at = time.perf_counter()
                headers = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = self._record(scope, context, status, seconds)
            if accounts is not None and context.client.identified:
                accounts.request_ended(context, route, status, started, seconds)

    def _record(self, scope: Scope, context: RequestContext, status: int, seconds: float) -> str:
        """Metrics and the access-log line; the route's bounded label."""
        fields, usage = context.log, context.usage
        path = scope["path"]
        endpoint = self._endpoints.find(scope["method"], path)
        route = endpoint.template if endpoint is not None else "other"  # a bounded label
        self.metrics.count_request(route, fields.model_label, status, seconds)
        if route in _QUIET:
            return route
        access_log.info(
            {
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
            }
        )
        return route


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, state: ProxyState) -> None:
        self.app = app
        self._state = state
        settings = state.settings
        self._api_keys = [k.encode() for k in settings.api_keys]
        self._pass_through = settings.pass_through
        self._keys_required = settings.keys_required
        # Virtual keys stand for the server's fal keys, so there are none in pass-through mode.
        self._accounts = state.accounts if not settings.pass_through else None
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
            await self._admin_call(scope, receive, send, endpoint)
            return
        context = request_context(scope)
        try:
            client = self._check(scope, endpoint, context)
            if isinstance(client, _Lookup):  # a virtual key this process has not seen yet
                assert self._accounts is not None
                await self._accounts.identify(client, context.client, _spends(endpoint))
                client = context.client.id
            rpm = context.client.rpm
            if rpm is not None:
                await self._limiter.admit_key(client, rpm)
            if self._limiter.active:
                await self._limiter.admit(client)
        except ProxyError as exc:
            context.log.error_type = exc.code or exc.type
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

    async def _reserve_upload(self, scope: Scope) -> int:
        """Room for a multipart body before it is read (upload_gate.py). The wait is half of
        BODY_TIMEOUT: the body must still arrive within the rest (connection.py)."""
        length = _header(scope, b"content-length")
        size = int(length) if length and length.isdigit() else self._max_body
        return await self._uploads.acquire(size, self._body_timeout / 2)

    async def _admin_call(
        self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint | None
    ) -> None:
        """The admin API: the Host and origin checks, JSON bodies, and ADMIN_KEY."""
        try:
            self._check_request(scope, endpoint)
            self._check_admin(scope)
        except ProxyError as exc:
            request_context(scope).log.error_type = exc.code or exc.type
            await send_error(send, _closing_if_body_unread(scope, exc))
            return
        await self.app(scope, self._limited(receive), send)

    def _check_admin(self, scope: Scope) -> None:
        if self._state.accounts is None:
            raise ProxyError(
                403,
                "The admin API is off: DATABASE_URL is none. Set DATABASE_URL (the default is "
                "a SQLite file) and ADMIN_KEY, then restart.",
                type=PERMISSION,
                code="admin_disabled",
            )
        # ADMIN_KEY as a Bearer token, or the console's session with its CSRF token; 403
        # while ADMIN_KEY is unset.
        self._state.console.authorize_admin(scope)

    def _check(self, scope: Scope, endpoint: Endpoint | None, context: RequestContext) -> str:
        """Refuse early; return the client's identity for limits (never a raw key), or the
        token of a virtual key to look up first."""
        self._check_request(scope, endpoint)
        return self._identify(scope, context, _protocol(scope, endpoint), endpoint)

    def _check_request(self, scope: Scope, endpoint: Endpoint | None) -> None:
        """What every guarded request must pass, whoever sends it."""
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

    def _identify(
        self,
        scope: Scope,
        context: RequestContext,
        protocol: Protocol,
        endpoint: Endpoint | None,
    ) -> str:
        """Who is calling, from the key they sent (filled into the context's client); a 401
        for a missing or wrong key. The client's id, or the token of a virtual key not seen
        here yet.

        fal's own clients may also send their fal key as `Authorization: Key …` in
        pass-through mode (docs/fal-proxy.md). Any client may send its key as `x-api-key`
        instead of `Bearer` (Anthropic's always do: docs/anthropic.md)."""
        client = context.client
        token = _bearer(scope)
        if protocol is Protocol.FAL:
            token = _fal_client_token(scope, token, pass_through=self._pass_through)
        elif not token and (protocol is Protocol.ANTHROPIC or not self._pass_through):
            token = (_header(scope, b"x-api-key") or "").strip() or None
        # The console's own calls (its playground): the admin's session, CSRF-checked.
        console = self._console
        if (
            not token
            and console is not None
            and not self._pass_through
            and console.api_session(scope)
        ):
            client.kind, client.id, client.identified = "console", "console", True
            return client.id
        if self._pass_through:
            if not token:
                raise _auth_error(token)
            context.fal_key = token
            client.kind = "passthrough"
            client.id = "fal-" + hashlib.sha256(token.encode()).hexdigest()[:16]
            client.identified = True
            return client.id
        if self._api_keys:
            index = _match_key(token, self._api_keys)
            if index is not None:
                client.kind, client.id, client.identified = "static", f"key-{index}", True
                return client.id
        accounts = self._accounts
        if token is not None and accounts is not None and looks_virtual(token):
            if not accounts.identify_cached(token, client, _spends(endpoint)):
                return _Lookup(token)  # looked up by the caller, which may await
            return client.id
        if self._keys_required:
            raise _auth_error(token)
        address = scope.get("client")
        client.kind, client.id = "open", f"ip-{address[0]}" if address else "anonymous"
        client.identified = True
        return client.id

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
        watchdog: Watchdog | None = None  # BODY_TIMEOUT from the first read
        complete = False

        async def receive_limited() -> Message:
            nonlocal seen, watchdog, complete
            if complete:
                return await receive()
            if watchdog is None:
                watchdog = Watchdog(asyncio.get_running_loop().time() + self._body_timeout)
            try:
                # A body that has already arrived (the usual small one) is taken without
                # arming a timer.
                message = await watchdog.run(receive())
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
                    watchdog.close()
                    error = _too_large(self._max_body)
                    error.headers["Connection"] = "close"  # the rest of the body is unread
                    raise error
                complete = not message.get("more_body", False)
            else:
                complete = True
            if complete:
                watchdog.close()
            return message

        return receive_limited


async def send_error(send: Send, exc: ProxyError, body: bytes | None = None) -> None:
    """`exc` in OpenAI's shape, or as `body` (another protocol's shape of it)."""
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": exc.json() if body is None else body})


class _Lookup(str):
    """A virtual key not seen by this process: looked up before the request goes on."""

    __slots__ = ()


def _spends(endpoint: Endpoint | None) -> bool:
    """Whether a request can spend a virtual key's budget (GET /v1/key only reads it, and so
    do the endpoints marked `spends=False`)."""
    return endpoint is None or (endpoint.spends and endpoint.path != KEY_PATH)


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
    if body is Body.JSON_OR_MULTIPART and value in (Body.JSON, Body.MULTIPART):
        return
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
