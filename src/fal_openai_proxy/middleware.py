"""Pure ASGI middleware (no BaseHTTPMiddleware: it buffers and slows streams).

RequestLog: request id, one JSON log line and metrics per request.
Guard: draining, client auth, body size and per-client limits on /v1/ routes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import AccessLogFields, clip, new_context, request_context
from .metrics import Metrics
from .openai.errors import AUTHENTICATION, ProxyError, unavailable
from .routes.media_paths import MEDIA_PATHS
from .state import ProxyState

access_log = logging.getLogger("fal_openai_proxy.access")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        request_id = request_id[:128]
        fields = new_context(scope, request_id).log
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
            self._record(scope, fields, status, time.perf_counter() - started)

    def _record(self, scope: Scope, fields: AccessLogFields, status: int, seconds: float) -> None:
        path = scope["path"]
        route = _route_label(path)
        self.metrics.requests.labels(route, fields.model_label, str(status)).inc()
        self.metrics.latency.labels(route).observe(seconds)
        if route in ("/healthz", "/readyz", "/metrics"):
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
        self._limiter = state.limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        try:
            client = self._check(scope)
            if self._limiter.active:
                await self._limiter.admit(client)
        except ProxyError as exc:
            request_context(scope).log.error_type = exc.code or exc.type
            await send_error(send, exc)
            return
        self._state.in_flight += 1
        try:
            await self.app(scope, self._limited(receive), send)
        finally:
            self._state.in_flight -= 1
            if self._limiter.active:
                self._limiter.done(client)

    def _check(self, scope: Scope) -> str:
        """Refuse early; return the client's identity for limits (never a raw key)."""
        if self._state.draining:
            raise unavailable("The server is shutting down; retry on another instance.")
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > self._max_body:
            raise _too_large(self._max_body)
        token = _bearer(scope)
        if self._api_keys:
            index = _match_key(token, self._api_keys)
            if index is None:
                raise _auth_error(token)
            return f"key-{index}"
        if self._pass_through:
            if not token:
                raise _auth_error(token)
            request_context(scope).fal_key = token
            return "fal-" + hashlib.sha256(token.encode()).hexdigest()[:16]
        client = scope.get("client")
        return f"ip-{client[0]}" if client else "anonymous"

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._max_body:
                    raise _too_large(self._max_body)
            return message

        return receive_limited


async def send_error(send: Send, exc: ProxyError) -> None:
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": exc.json()})


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
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
            type=AUTHENTICATION,
            code="missing_api_key",
        )
    return ProxyError(
        401, "Incorrect API key provided.", type=AUTHENTICATION, code="invalid_api_key"
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


def _route_label(path: str) -> str:
    """Bounded route labels: model ids in paths are not labels."""
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    if path in ("/v1/models", "/v1/chat/completions", "/healthz", "/readyz", "/metrics"):
        return path
    if path in MEDIA_PATHS:
        return path
    if path in ("/v1/responses", "/v1/embeddings"):
        return path
    if path.startswith("/v1/responses/"):
        return "/v1/responses/{id}"
    return "other"
