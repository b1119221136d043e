"""Everything one application instance owns; built from one Settings object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import Request

from .catalog import Catalog
from .fal.client import FalClient
from .fal.transport import Transport
from .metrics import Metrics
from .ratelimit import ClientLimiter
from .services.chat import ChatService
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
    shared: SharedStore | None = None  # REDIS_URL: state shared with the other replicas


def proxy_state(request: Request) -> ProxyState:
    state: ProxyState = request.app.state.proxy
    return state
