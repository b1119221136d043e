"""create_app(settings): one application object from one settings object."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .catalog import LIVE_CATEGORIES, Catalog, ModelsFileError, load_models_file
from .context import request_context
from .fal.client import USER_AGENT, FalClient
from .fal.cluster import ClusterKeys
from .fal.errors import FalError, FalStatusError
from .fal.http import HttpClient
from .fal.keys import DECREASE, MAX_LIMIT, KeyPool
from .fal.openai_route import OpenAIRouteClient
from .fal.retry import CallStarter
from .fal.timeouts import Timeouts
from .metrics import Metrics
from .middleware import GuardMiddleware, RequestLogMiddleware
from .model_refresh import LiveModels, ModelRefresher
from .openai.errors import SERVER_ERROR, ProxyError
from .ratelimit import ClientLimiter
from .routes.audio import create_speech, create_transcription, create_translation
from .routes.chat import CLIENT_CLOSED, create_chat_completion
from .routes.docs import docs_page, openapi_json
from .routes.embeddings import create_embeddings
from .routes.health import healthz, metrics, readyz
from .routes.images import create_image, create_image_edit
from .routes.models import list_models, retrieve_model
from .routes.responses import create_response, stored_response
from .routes.videos import (
    create_video,
    delete_video,
    list_videos,
    remix_video,
    retrieve_video,
    video_content,
)
from .services.chat import ChatService
from .services.embeddings import EmbeddingsService
from .services.media_build import build_media
from .services.openai_route import OpenAIChatService
from .services.responses import ResponsesService
from .services.routing import RouteTable
from .services.video_build import build_videos
from .services.video_watch import VideoWatcher
from .settings import Settings
from .shared import SharedStore
from .state import ProxyState, proxy_state
from .store.database import DatabaseURLError, migrate
from .translate.errors import to_openai_error

log = logging.getLogger(__name__)
CHAT_PATH = "/v1/chat/completions"


class ConfigError(Exception):
    """A configuration the server refuses to start with."""


def create_app(settings: Settings | None = None) -> ProxyApp:
    settings = settings or Settings()
    if problems := settings.startup_problems():
        raise ConfigError(" ".join(problems))
    live = LiveModels() if settings.fal_models_refresh else None
    try:
        state = _build_state(settings, live)
    except (ModelsFileError, DatabaseURLError) as exc:
        raise ConfigError(str(exc)) from None
    refresher = _model_refresher(settings, state, live)
    watcher = VideoWatcher.build(settings, state.videos, state.http, state.shared)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if state.database is not None:
            await migrate(state.database)  # a database that cannot be reached stops start-up
        if state.shared is not None:
            await state.shared.start()  # never fails: without Redis, per-process state
        if refresher is not None:
            refresher.start()  # in the background: start-up never waits for fal's list
        if watcher is not None:
            watcher.start()
        try:
            yield  # upstream connections are opened on first use
        finally:
            if watcher is not None:
                await watcher.stop()
            if refresher is not None:
                await refresher.stop()
            await state.videos.flush()
            if state.shared is not None:
                await state.shared.close()  # frees this replica's slots first
            if state.database is not None:
                await state.database.dispose()
            await state.http.close()

    app = Starlette(
        routes=[
            # POSTs never reach this route (ProxyApp serves them); it answers 405 for GETs.
            Route(CHAT_PATH, create_chat_completion, methods=["POST"]),
            Route("/v1/responses", create_response, methods=["POST"]),
            Route(
                "/v1/responses/{response_id:path}",
                stored_response,
                methods=["GET", "POST", "DELETE"],
            ),
            Route("/v1/embeddings", create_embeddings, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/docs", docs_page, methods=["GET"]),
            Route("/v1/images/generations", create_image, methods=["POST"]),
            Route("/v1/images/edits", create_image_edit, methods=["POST"]),
            Route("/v1/audio/transcriptions", create_transcription, methods=["POST"]),
            Route("/v1/audio/translations", create_translation, methods=["POST"]),
            Route("/v1/audio/speech", create_speech, methods=["POST"]),
            Route("/v1/videos", create_video, methods=["POST"]),
            Route("/v1/videos", list_videos, methods=["GET"]),
            Route("/v1/videos/{video_id}", retrieve_video, methods=["GET"]),
            Route("/v1/videos/{video_id}", delete_video, methods=["DELETE"]),
            Route("/v1/videos/{video_id}/content", video_content, methods=["GET"]),
            Route("/v1/videos/{video_id}/remix", remix_video, methods=["POST"]),
        ],
        exception_handlers={
            ProxyError: _proxy_error,
            HTTPException: _http_error,
            FalError: _upstream_error,
            ClientDisconnect: _client_gone,
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
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
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


def _model_refresher(
    settings: Settings, state: ProxyState, live: LiveModels | None
) -> ModelRefresher | None:
    if live is None:
        return None
    keys = settings.fal_keys  # a server key only; pass-through clients' keys are theirs
    return ModelRefresher(
        state.http,
        api_url=settings.fal_api_url,
        key=keys[0] if keys else None,
        categories=LIVE_CATEGORIES,
        interval=settings.fal_models_refresh_interval,
        source=live,
        metrics=state.metrics,
        store=state.shared,
    )


def _build_state(settings: Settings, live: LiveModels | None = None) -> ProxyState:
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
        idle_expiry=settings.pool_idle_timeout,
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
    catalog = Catalog(settings.fal_chat_app, models, live)
    open_streams: set[asyncio.Task[None]] = set()
    # fal's OpenAI route: its own client, starting calls with the same keys and retries.
    route_client = OpenAIRouteClient(
        run_url=settings.fal_run_url,
        http=http,
        starter=CallStarter(pool, timeouts.retry_budget, metrics),
        timeouts=timeouts,
    )
    route_deps = (settings, route_client, catalog, metrics, open_streams)
    per_model = {m.id: m.route for m in models or () if m.route}
    routes = RouteTable(settings.model_route_table, per_model)
    chat = ChatService(
        settings, fal, catalog, metrics, open_streams, routes, OpenAIChatService(*route_deps)
    )
    state = ProxyState(settings, catalog, metrics, http, fal, limiter, chat, open_streams)
    state.responses = ResponsesService(*route_deps)
    state.embeddings = EmbeddingsService(*route_deps)
    state.images, state.audio = build_media(settings, http, pool, fal, catalog, metrics)
    state.shared = shared
    state.videos, state.video_files, state.database = build_videos(
        settings, http, pool, catalog, metrics, shared
    )
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
    if isinstance(exc, ClientDisconnect):
        return await _client_gone(request, exc)
    return await _unexpected_error(request, exc)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client left while sending its body: its doing, not ours (logged as 499)."""
    request_context(request.scope).log.error_type = "client_disconnected"
    return Response(status_code=CLIENT_CLOSED)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    fields = request_context(request.scope).log
    fields.error_type = "internal_error"
    log.exception("unexpected error", extra={"request_id": fields.request_id})
    return _error_response(
        ProxyError(500, "The server had an error processing your request.", type=SERVER_ERROR)
    )


__all__ = ["ConfigError", "ProxyApp", "create_app"]
