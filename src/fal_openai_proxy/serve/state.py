"""Everything one application instance owns; built once, from one Settings object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from ..base.metrics import Metrics
from ..base.settings import Settings
from ..fal.client import FalClient
from ..fal.files import FalFiles
from ..fal.jobs import FalJobs
from ..fal.keys import KeyPool
from ..fal.openrouter import OpenRouterClient
from ..fal.pricing import UnitPrices
from ..fal.proxy_client import FalProxyClient
from ..fal.transport import Transport
from ..services.audio import AudioService
from ..services.catalog import Catalog
from ..services.chat import ChatService
from ..services.completions import CompletionsService
from ..services.embeddings import EmbeddingsService
from ..services.fal_proxy import FalProxyService
from ..services.images import ImageService
from ..services.messages import MessagesService
from ..services.overview import OverviewService
from ..services.pricing import CostMeter
from ..services.responses import ResponsesService
from ..services.router import ModelRouter
from ..services.videos import VideoService
from ..store.db import Database
from ..store.redis import RedisStore
from .accounting import Accounts
from .console_auth import ConsoleAuth
from .ratelimit import ClientLimiter

if TYPE_CHECKING:  # routes import this module: no import of theirs at run time
    from ..routes.registry import EndpointIndex


@dataclass
class Upstream:
    """What talks to fal (and to the Redis the replicas share)."""

    metrics: Metrics
    http: Transport
    fal: FalClient  # fal's queue and /stream
    openrouter: OpenRouterClient  # fal's OpenAI-compatible route
    files: FalFiles  # fal's storage and CDN
    redis: RedisStore | None  # REDIS_URL: state shared with the other replicas
    jobs: FalJobs  # fal's queue, for jobs that outlive their request (videos)
    database: Database | None  # DATABASE_URL: accounts and videos, one engine
    fal_proxy: FalProxyClient  # fal's own clients' calls, relayed (/api/fal/proxy)
    unit_prices: UnitPrices | None = None  # fal's unit prices, refreshed in the background
    pool: KeyPool | None = None  # the server's fal keys; None in pass-through mode


@dataclass
class Services:
    """One service per endpoint family."""

    catalog: Catalog
    chat: ChatService
    responses: ResponsesService
    embeddings: EmbeddingsService
    images: ImageService
    audio: AudioService
    videos: VideoService
    completions: CompletionsService  # legacy text completions, on the prompt apps
    fal_proxy: FalProxyService
    messages: MessagesService  # Anthropic's Messages API
    router: ModelRouter  # MODEL_ROUTES: which fal route serves each chat model
    overview: OverviewService  # GET /admin/overview
    meter: CostMeter  # each request's cost (services/pricing.py)


@dataclass
class ProxyState:
    settings: Settings
    upstream: Upstream
    services: Services
    endpoints: EndpointIndex
    limiter: ClientLimiter
    open_streams: set[asyncio.Task[None]]  # ended by the drain
    console: ConsoleAuth  # ADMIN_KEY and console sessions: who may use the admin API
    draining: bool = False
    in_flight: int = 0  # requests being served with a client's key, for draining
    openapi: dict[str, Any] | None = field(default=None, repr=False)  # built on first use
    accounts: Accounts | None = None  # DATABASE_URL: virtual keys, usage, the admin API


def proxy_state(request: Request) -> ProxyState:
    state: ProxyState = request.app.state.proxy
    return state
