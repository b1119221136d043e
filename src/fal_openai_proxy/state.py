"""Everything one application instance owns; built from one Settings object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.requests import Request

from .catalog import Catalog
from .fal.client import FalClient
from .fal.http import HttpClient
from .metrics import Metrics
from .ratelimit import ClientLimiter
from .settings import Settings


@dataclass
class ProxyState:
    settings: Settings
    catalog: Catalog
    metrics: Metrics
    http: HttpClient
    fal: FalClient
    limiter: ClientLimiter
    draining: bool = False
    in_flight: int = 0  # /v1/ requests being served, for draining
    open_streams: set[asyncio.Task[None]] = field(default_factory=set)  # ended by the drain


def proxy_state(request: Request) -> ProxyState:
    state: ProxyState = request.app.state.proxy
    return state
