"""HTTP routes: thin wiring between the request and the services. Each family lists its
endpoints in its own `ROUTES`; `ENDPOINTS` is all of them, the one list the app serves."""

from __future__ import annotations

from . import (
    admin,
    admin_status,
    audio,
    chat,
    completions,
    console,
    docs,
    embeddings,
    fal_proxy,
    health,
    images,
    messages,
    models,
    responses,
    videos,
)  # fmt: skip
from .registry import Endpoint

ENDPOINTS: list[Endpoint] = [
    *chat.ROUTES,
    *responses.ROUTES,
    *embeddings.ROUTES,
    *completions.ROUTES,
    *messages.ROUTES,
    *models.ROUTES,
    *images.ROUTES,
    *audio.ROUTES,
    *videos.ROUTES,
    *fal_proxy.ROUTES,
    *health.ROUTES,
    *docs.ROUTES,
    *admin.ROUTES,
    *admin_status.ROUTES,
    *console.ROUTES,
]
