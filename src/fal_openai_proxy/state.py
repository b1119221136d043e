"""Everything one application instance owns; built from one Settings object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from .catalog import Catalog
from .fal.client import FalClient
from .fal.files import FalFiles
from .fal.transport import Transport
from .metrics import Metrics
from .ratelimit import ClientLimiter
from .services.audio import AudioService
from .services.chat import ChatService
from .services.embeddings import EmbeddingsService
from .services.images import ImageService
from .services.responses import ResponsesService
from .services.videos import VideoService
from .settings import Settings
from .shared import SharedStore


@dataclass
class ProxyState:
    settings: Settings
    catalog: Catalog
    metrics: Metrics
    http: Transport
    fal: FalClient
    limiter: ClientLimiter
    chat: ChatService
    open_streams: set[asyncio.Task[None]]  # ended by the drain
    draining: bool = False
    in_flight: int = 0  # /v1/ requests being served, for draining
    images: ImageService = field(init=False)
    audio: AudioService = field(init=False)
    responses: ResponsesService | None = None  # fal's OpenAI route
    embeddings: EmbeddingsService | None = None
    shared: SharedStore | None = None  # REDIS_URL: state shared with the other replicas
    videos: VideoService = field(init=False)
    video_files: FalFiles = field(init=False)
    database: AsyncEngine | None = None  # DATABASE_URL


def proxy_state(request: Request) -> ProxyState:
    state: ProxyState = request.app.state.proxy
    return state
