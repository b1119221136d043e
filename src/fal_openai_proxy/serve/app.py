"""create_app(settings): one application object from one settings object.

The composition root: `build_upstream` makes what talks to fal (and Redis), `build_services`
one service per endpoint family on top of it; the routes come from the registry
(`routes/__init__.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..base.metrics import Metrics
from ..base.settings import Settings
from ..fal.client import USER_AGENT, FalClient
from ..fal.cluster import ClusterKeys
from ..fal.files import FalFiles
from ..fal.http import HttpClient
from ..fal.jobs import FalJobs
from ..fal.keys import DECREASE, MAX_LIMIT, KeyPool
from ..fal.media_apps import MEDIA_APPS, media_model_ids
from ..fal.media_fetch import DEFAULT_MEDIA_HOSTS, MediaFetcher, MediaPolicy
from ..fal.openrouter import OPENROUTER_APP, OpenRouterClient
from ..fal.pricing import UnitPrices
from ..fal.proxy_client import FalProxyClient
from ..fal.proxy_protocol import EXPOSED_HEADERS, Upstreams, parse_app_globs
from ..fal.retry import CallStarter
from ..fal.timeouts import Timeouts
from ..fal.video_apps import video_model_ids
from ..routes import ENDPOINTS
from ..routes.registry import EndpointIndex, Handler
from ..services.audio import AudioService
from ..services.catalog import (
    LIVE_CATEGORIES,
    Catalog,
    ModelCard,
    ModelsFileError,
    load_models_file,
)
from ..services.chat import ChatService
from ..services.completions import CompletionsService
from ..services.embeddings import EmbeddingsService
from ..services.fal_proxy import FalProxyService, SubmittedRequests
from ..services.images import ImageService
from ..services.messages import MessagesService
from ..services.openrouter import OpenRouterChatService
from ..services.overview import OverviewService, TrafficWindow
from ..services.pricing import CostMeter, load_price_table
from ..services.responses import ResponsesService
from ..services.router import ModelRouter
from ..services.tokens import Tokenizer
from ..services.video_watch import VideoWatcher
from ..services.videos import VideoService
from ..store.db import Database, DatabaseUrlError
from ..store.redis import RedisStore
from ..store.videos import SqlVideoStore
from ..translate.cost import PriceTable, PriceTableError
from .accounting import Accounts
from .console_auth import ConsoleAuth
from .errors import HANDLERS, handle_error
from .middleware import GuardMiddleware, RequestLogMiddleware
from .model_refresh import LiveModels, ModelRefresher
from .overview_sources import database_sources
from .ratelimit import ClientLimiter
from .state import ProxyState, Services, Upstream


class ConfigError(Exception):
    """A configuration the server refuses to start with."""


def create_app(settings: Settings | None = None) -> ProxyApp:
    settings = settings or Settings()
    if problems := settings.startup_problems():
        raise ConfigError(" ".join(problems))
    try:
        models = load_models_file(settings.models_file) if settings.models_file else None
        prices = load_price_table(settings.prices_file)
    except (ModelsFileError, PriceTableError) as exc:
        raise ConfigError(str(exc)) from None
    live = LiveModels() if settings.fal_models_refresh else None
    try:
        upstream = build_upstream(settings)
    except DatabaseUrlError as exc:
        raise ConfigError(str(exc)) from None
    open_streams: set[asyncio.Task[None]] = set()
    services = build_services(settings, upstream, open_streams, models, live, prices)
    limiter = ClientLimiter(
        rpm=settings.rate_limit_rpm,
        max_concurrent=settings.max_concurrent_per_client,
        redis_url=settings.redis_url,
        shared=upstream.redis,
    )
    console = ConsoleAuth(
        settings.admin_secret, session_ttl=settings.console_session_ttl, redis=upstream.redis
    )
    state = ProxyState(
        settings, upstream, services, EndpointIndex(ENDPOINTS), limiter, open_streams, console
    )
    if settings.accounts_enabled:
        state.accounts = Accounts(settings, upstream.metrics, upstream.database)
        services.overview.use_database(*database_sources(state.accounts))
    accounts = state.accounts
    refresher = _model_refresher(settings, upstream, live)
    watcher = VideoWatcher.build(settings, services.videos, upstream.http, upstream.redis)
    unit_prices = upstream.unit_prices

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if upstream.redis is not None:
            await upstream.redis.start()  # never fails: without Redis, per-process state
        if accounts is not None:
            await accounts.start()  # never fails: without the database, usage waits
        if refresher is not None:
            refresher.start()  # in the background: start-up never waits for fal's list
        if watcher is not None:
            watcher.start()
        if unit_prices is not None:
            unit_prices.start()  # in the background too: a request never waits for a price
        # Before the first request: building it holds the GIL for ~0.1 s, which a loop already
        # serving would feel as a stall (docs/anthropic.md).
        services.messages.tokenizer.load()
        services.overview.traffic.start()
        try:
            yield  # upstream connections are opened on first use
        finally:
            await services.overview.traffic.stop()
            if unit_prices is not None:
                await unit_prices.stop()
            if watcher is not None:
                await watcher.stop()
            if refresher is not None:
                await refresher.stop()
            await services.videos.close()  # the video rows still being written, bounded
            if accounts is not None:
                await accounts.close()  # writes the usage still queued; closes the database
            if upstream.redis is not None:
                await upstream.redis.close()  # frees this replica's slots first
            await upstream.http.close()

    app = Starlette(
        routes=[Route(e.path, e.handler, methods=[e.method]) for e in ENDPOINTS],
        exception_handlers=dict(HANDLERS),
        lifespan=lifespan,
    )
    app.state.proxy = state
    upstream.metrics.requests_in_flight.set_function(lambda: float(state.in_flight))
    return ProxyApp(app, state)


def build_upstream(settings: Settings) -> Upstream:
    metrics = Metrics()
    redis = RedisStore(settings.redis_url, metrics=metrics) if settings.redis_url else None
    pool = _key_pool(settings, metrics, redis)
    # Idle connections kept per fal host: a submit or stream plus a status stream for every
    # request the key pool lets through, within a bound (connections are opened as needed).
    cap = settings.key_concurrency_cap or 1000  # auto: no cap known in advance
    in_flight = len(pool) * cap if pool else 1000
    http = HttpClient(
        connect_timeout=settings.connect_timeout,
        max_idle_per_host=min(2 * in_flight + 16, 256),
        user_agent=USER_AGENT,
        idle_expiry=settings.pool_idle_timeout,
        max_body_bytes=settings.max_upstream_body_bytes,
    )
    timeouts = Timeouts(
        connect=settings.connect_timeout,
        first_event=settings.first_event_timeout,
        idle=settings.idle_timeout,
        total=settings.request_timeout,
        keepalive=settings.keepalive_interval,
        retry_budget=settings.retry_budget,
        max_event_bytes=settings.max_upstream_body_bytes,
    )
    fal = FalClient(
        run_url=settings.fal_run_url,
        queue_url=settings.fal_queue_url,
        http=http,
        pool=pool,
        timeouts=timeouts,
        metrics=metrics,
    )
    # fal's OpenAI-compatible route and its storage: their own clients, starting calls with
    # the same keys and retries.
    openrouter = OpenRouterClient(
        run_url=settings.fal_run_url,
        http=http,
        starter=CallStarter(pool, timeouts.retry_budget, metrics),
        timeouts=timeouts,
    )
    files = FalFiles.build(
        http,
        _media_fetcher(settings, http),
        rest_url=settings.fal_rest_url,
        pool=pool,
        retry_budget=settings.retry_budget,
        metrics=metrics,
        timeout=settings.media_fetch_timeout,
    )
    jobs = FalJobs(
        queue_url=settings.fal_queue_url,
        http=http,
        starter=CallStarter(pool, timeouts.retry_budget, metrics),
        metrics=metrics,
        timeout=settings.first_event_timeout,
    )
    # One engine for the process: the accounts and the videos share it (store/db.py).
    database = Database(settings.database_url) if settings.accounts_enabled else None
    # fal's own clients (/api/fal/proxy): their calls relayed with the same keys and retries.
    fal_proxy = FalProxyClient(
        http=http,
        pool=pool,
        timeouts=timeouts,
        metrics=metrics,
        upstreams=Upstreams(settings.fal_run_url, settings.fal_queue_url, settings.fal_rest_url),
    )
    prices = _unit_prices(settings, http, metrics)
    return Upstream(
        metrics, http, fal, openrouter, files, redis, jobs, database, fal_proxy, prices, pool
    )


def _unit_prices(settings: Settings, http: HttpClient, metrics: Metrics) -> UnitPrices | None:
    """fal's unit prices, read with the server's first key (prices can be per account);
    none without a server key or with FAL_PRICING_REFRESH_INTERVAL=0."""
    keys = settings.fal_keys
    if not keys or settings.fal_pricing_refresh_interval <= 0:
        return None
    apps = {settings.fal_chat_app, settings.fal_vision_app, OPENROUTER_APP, *MEDIA_APPS}
    return UnitPrices(
        http,
        api_url=settings.fal_api_url,
        key=keys[0],
        interval=settings.fal_pricing_refresh_interval,
        endpoint_ids=apps,
        metrics=metrics,
    )


def _media_fetcher(settings: Settings, http: HttpClient) -> MediaFetcher:
    """The one guard for every URL fal names (fal/media_fetch.py), on a pool of its own."""
    policy = MediaPolicy(
        [*DEFAULT_MEDIA_HOSTS, *settings.media_host_list],
        [settings.fal_run_url, settings.fal_queue_url, settings.fal_rest_url, settings.fal_api_url],
    )
    return MediaFetcher(
        http.guarded(policy.allow_address),
        policy,
        max_file_bytes=settings.max_media_bytes,
        bytes_per_request=settings.media_bytes_per_request,
        idle_timeout=settings.media_fetch_timeout,
        request_timeout=settings.request_timeout,
    )


def _key_pool(settings: Settings, metrics: Metrics, redis: RedisStore | None) -> KeyPool | None:
    if not settings.fal_keys:
        return None  # pass-through: each client brings its own key
    cluster = None
    if redis is not None:
        cluster = ClusterKeys(
            redis,
            settings.fal_keys,
            cap=settings.key_concurrency_cap,
            decrease=DECREASE,
            max_limit=MAX_LIMIT,
            max_bench=max(
                settings.key_auth_cooldown,
                settings.key_rate_limit_cooldown,
                settings.max_retry_after,
            ),
        )
    pool = KeyPool(
        settings.fal_keys,
        concurrency=settings.key_concurrency_cap,
        max_wait=settings.max_queue_wait,
        auth_cooldown=settings.key_auth_cooldown,
        rate_limit_cooldown=settings.key_rate_limit_cooldown,
        cluster=cluster,
        max_retry_after=settings.max_retry_after,
    )
    metrics.watch_keys(
        len(pool), in_flight=pool.in_flight, healthy=pool.is_healthy, limit=pool.limit
    )
    return pool


def build_services(
    settings: Settings,
    upstream: Upstream,
    open_streams: set[asyncio.Task[None]],
    models: list[ModelCard] | None = None,
    live: LiveModels | None = None,
    prices: PriceTable | None = None,
) -> Services:
    metrics, fal, files = upstream.metrics, upstream.fal, upstream.files
    catalog = Catalog(settings.fal_chat_app, models, live)
    catalog.add_media(media_model_ids())
    catalog.add_kinds(video_model_ids())
    store = SqlVideoStore(upstream.database) if upstream.database is not None else None
    meter = CostMeter(prices or load_price_table(None), upstream.unit_prices)
    openrouter = (settings, upstream.openrouter, catalog, metrics, open_streams, meter)
    per_model = {m.id: m.route for m in models or () if m.route}
    router = ModelRouter(settings.model_route_table, per_model)
    openrouter_chat = OpenRouterChatService(*openrouter)
    chat = ChatService(
        settings, fal, catalog, metrics, open_streams, router, openrouter_chat, meter
    )
    return Services(
        catalog=catalog,
        chat=chat,
        responses=ResponsesService(*openrouter),
        embeddings=EmbeddingsService(*openrouter),
        images=ImageService(settings, fal, files, catalog, meter),
        audio=AudioService(settings, fal, files, catalog, meter),
        videos=VideoService(
            settings, upstream.jobs, files, catalog, store, upstream.redis, meter
        ),
        completions=CompletionsService(settings, fal, catalog, metrics, open_streams, chat),
        fal_proxy=FalProxyService(
            upstream.fal_proxy, SubmittedRequests(upstream.redis),
            allowed_apps=parse_app_globs(settings.fal_proxy_allowed_apps),
            pass_through=settings.pass_through, catalog=catalog, metrics=metrics,
            open_streams=open_streams, write_timeout=settings.write_timeout, meter=meter,
        ),
        messages=MessagesService(
            settings, chat, openrouter_chat, catalog, fal, metrics, open_streams, Tokenizer()
        ),
        meter=meter,
        router=router,
        overview=OverviewService(TrafficWindow(metrics), upstream.pool, upstream.redis),
    )  # fmt: skip


def _model_refresher(
    settings: Settings, upstream: Upstream, live: LiveModels | None
) -> ModelRefresher | None:
    if live is None:
        return None
    keys = settings.fal_keys  # a server key only; pass-through clients' keys are theirs
    return ModelRefresher(
        upstream.http,
        api_url=settings.fal_api_url,
        key=keys[0] if keys else None,
        categories=LIVE_CATEGORIES,
        interval=settings.fal_models_refresh_interval,
        source=live,
        metrics=upstream.metrics,
        store=upstream.redis,
    )


class ProxyApp:
    """The ASGI application: our middleware around a dispatcher that serves the registry's
    `direct` endpoints (chat completions) itself and everything else through Starlette."""

    def __init__(self, starlette: Starlette, state: ProxyState) -> None:
        self.starlette = starlette
        self.state = starlette.state  # `app.state.proxy`, as in Starlette
        self.routes = starlette.routes
        self._direct: dict[tuple[str, str], Handler] = {
            (e.method, e.path): e.handler for e in state.endpoints.endpoints if e.direct
        }
        settings = state.settings
        asgi: ASGIApp = GuardMiddleware(self._dispatch, state=state)
        if settings.cors_origin_list:
            asgi = CORSMiddleware(
                asgi,
                allow_origins=settings.cors_origin_list,
                allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],  # PUT: fal's cancel
                allow_headers=["*"],
                # What fal's client reads of an answer (docs/fal-protocol.md §13.1).
                expose_headers=["x-request-id", *EXPOSED_HEADERS],
            )
        self._asgi = RequestLogMiddleware(
            asgi, metrics=state.upstream.metrics, endpoints=state.endpoints, accounts=state.accounts
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = None
        if scope["type"] == "http":
            handler = self._direct.get((scope["method"], scope["path"]))
        if handler is None:
            await self.starlette(scope, receive, send)
            return
        scope["app"] = self.starlette
        response = await _answer(handler, scope, receive)
        await response(scope, receive, send)


async def _answer(handler: Handler, scope: Scope, receive: Receive) -> Response:
    # A function of its own so that the request (and its body, possibly megabytes of images)
    # is freed before a stream starts, not held for its whole length.
    request = Request(scope, receive)
    try:
        return await handler(request)
    except Exception as exc:
        return await handle_error(request, exc)


__all__ = ["ConfigError", "ProxyApp", "build_services", "build_upstream", "create_app"]
