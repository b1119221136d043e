"""create_app(settings): one application object from one settings object."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .catalog import Catalog, load_models_file
from .context import request_context
from .fal.client import USER_AGENT, FalClient
from .fal.cluster import ClusterKeys
from .fal.errors import FalError, FalStatusError
from .fal.http import HttpClient
from .fal.keys import DECREASE, MAX_LIMIT, KeyPool
from .fal.timeouts import Timeouts
from .metrics import Metrics
from .middleware import GuardMiddleware, RequestLogMiddleware
from .openai.errors import SERVER_ERROR, ProxyError
from .ratelimit import ClientLimiter
from .routes.chat import create_chat_completion
from .routes.docs import docs_page, openapi_json
from .routes.health import healthz, metrics, readyz
from .routes.models import list_models, retrieve_model
from .services.chat import ChatService
from .settings import Settings
from .shared import SharedStore
from .state import ProxyState, proxy_state
from .translate.errors import to_openai_error

log = logging.getLogger(__name__)
CHAT_PATH = "/v1/chat/completions"


class ConfigError(Exception):
    """A configuration the server refuses to start with."""


def create_app(settings: Settings | None = None) -> ProxyApp:
    settings = settings or Settings()
    if problems := settings.startup_problems():
        raise ConfigError(" ".join(problems))
    state = _build_state(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if state.shared is not None:
            await state.shared.start()  # never fails: without Redis, per-process state
        try:
            yield  # upstream connections are opened on first use
        finally:
            if state.shared is not None:
                await state.shared.close()  # frees this replica's slots first
            await state.http.close()

    app = Starlette(
        routes=[
            # POSTs never reach this route (ProxyApp serves them); it answers 405 for GETs.
            Route(CHAT_PATH, create_chat_completion, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/docs", docs_page, methods=["GET"]),
        ],
        exception_handlers={
            ProxyError: _proxy_error,
            HTTPException: _http_error,
            FalError: _upstream_error,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.proxy = state
    state.metrics.requests_in_flight.set_function(lambda: float(state.in_flight))
    return ProxyApp(app, state)


class ProxyApp:
    """The ASGI application: our middleware around a dispatcher that serves
    POST /v1/chat/completions directly and everything else through Starlette.

    The chat route skips Starlette's routing and exception layers because an open stream
    keeps every layer's coroutine frame alive: ~10 KB per stream (docs/benchmarks.md).
    """

    def __init__(self, starlette: Starlette, state: ProxyState) -> None:
        self.starlette = starlette
        self.state = starlette.state  # `app.state.proxy`, as in Starlette
        self.routes = starlette.routes
        settings = state.settings
        asgi: ASGIApp = GuardMiddleware(self._dispatch, state=state)
        if settings.cors_origin_list:
            asgi = CORSMiddleware(
                asgi,
                allow_origins=settings.cors_origin_list,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=["x-request-id"],
            )
        self._asgi = RequestLogMiddleware(asgi, metrics=state.metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == CHAT_PATH:
            scope["app"] = self.starlette
            response = await self._chat(scope, receive)
            await response(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)

    async def _chat(self, scope: Scope, receive: Receive) -> Response:
        # A function of its own so that the request (and its body, possibly megabytes of
        # images) is freed before a stream starts, not held for its whole length.
        request = Request(scope, receive)
        try:
            return await create_chat_completion(request)
        except Exception as exc:
            return await handle_error(request, exc)


def _build_state(settings: Settings) -> ProxyState:
    models = load_models_file(settings.models_file) if settings.models_file else None
    metrics = Metrics()
    shared = SharedStore(settings.redis_url, metrics=metrics) if settings.redis_url else None
    pool = None
    if settings.fal_keys:
        cluster = None
        if shared is not None:
            cluster = ClusterKeys(
                shared,
                settings.fal_keys,
                cap=settings.key_concurrency_cap,
                decrease=DECREASE,
                max_limit=MAX_LIMIT,
            )
        pool = KeyPool(
            settings.fal_keys,
            concurrency=settings.key_concurrency_cap,
            max_wait=settings.max_queue_wait,
            auth_cooldown=settings.key_auth_cooldown,
            rate_limit_cooldown=settings.key_rate_limit_cooldown,
            cluster=cluster,
        )
        metrics.watch_keys(
            len(pool), in_flight=pool.in_flight, healthy=pool.is_healthy, limit=pool.limit
        )
    # Idle connections kept per fal host: a submit or stream plus a status stream for every
    # request the key pool lets through, within a bound (connections are opened as needed).
    cap = settings.key_concurrency_cap or 1000  # auto: no cap known in advance
    in_flight = len(pool) * cap if pool else 1000
    http = HttpClient(
        connect_timeout=settings.connect_timeout,
        max_idle_per_host=min(2 * in_flight + 16, 256),
        user_agent=USER_AGENT,
    )
    timeouts = Timeouts(
        connect=settings.connect_timeout,
        first_event=settings.first_event_timeout,
        idle=settings.idle_timeout,
        total=settings.request_timeout,
        keepalive=settings.keepalive_interval,
        retry_budget=settings.retry_budget,
    )
    fal = FalClient(
        run_url=settings.fal_run_url,
        queue_url=settings.fal_queue_url,
        http=http,
        pool=pool,
        timeouts=timeouts,
        metrics=metrics,
    )
    limiter = ClientLimiter(
        rpm=settings.rate_limit_rpm,
        max_concurrent=settings.max_concurrent_per_client,
        redis_url=settings.redis_url,
        shared=shared,
    )
    catalog = Catalog(settings.fal_chat_app, models)
    open_streams: set[asyncio.Task[None]] = set()
    chat = ChatService(settings, fal, catalog, metrics, open_streams)
    state = ProxyState(settings, catalog, metrics, http, fal, limiter, chat, open_streams)
    state.shared = shared
    return state


def _error_response(exc: ProxyError) -> Response:
    return Response(exc.json(), exc.status, headers=exc.headers, media_type="application/json")


async def _proxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProxyError)
    request_context(request.scope).log.error_type = exc.code or exc.type
    return _error_response(exc)


async def _upstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FalError)
    settings = proxy_state(request).settings
    error = to_openai_error(exc, pass_through=settings.pass_through)
    fields = request_context(request.scope).log
    fields.error_type = exc.kind
    if isinstance(exc, FalStatusError):
        fields.fal_request_id = exc.request_id
        if exc.status in (401, 403) and not settings.pass_through:
            log.error("fal refused the server's key #%s (HTTP %d)", exc.key_index, exc.status)
    return _error_response(error)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
        code = "unknown_url"
    else:
        message, code = str(exc.detail), None
    error = ProxyError(exc.status_code, message, code=code, headers=exc.headers)
    return await _proxy_error(request, error)


async def handle_error(request: Request, exc: Exception) -> Response:
    """The same mapping as the handlers given to Starlette, for the direct chat route."""
    if isinstance(exc, ProxyError):
        return await _proxy_error(request, exc)
    if isinstance(exc, FalError):
        return await _upstream_error(request, exc)
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    fields = request_context(request.scope).log
    fields.error_type = "internal_error"
    log.exception("unexpected error", extra={"request_id": fields.request_id})
    return _error_response(
        ProxyError(500, "The server had an error processing your request.", type=SERVER_ERROR)
    )


__all__ = ["ConfigError", "ProxyApp", "create_app"]
