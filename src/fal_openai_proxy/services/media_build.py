"""Builds the media services from the settings (called once by `create_app`)."""

from __future__ import annotations

from ..catalog import Catalog
from ..fal.client import FalClient
from ..fal.files import FalFiles
from ..fal.keys import KeyPool
from ..fal.media_apps import media_model_ids
from ..fal.transport import Transport
from ..metrics import Metrics
from ..settings import Settings
from .audio import AudioService
from .images import ImageService
from .pricing import CostMeter


def build_media(
    settings: Settings,
    http: Transport,
    pool: KeyPool | None,
    fal: FalClient,
    catalog: Catalog,
    metrics: Metrics,
    meter: CostMeter | None = None,
) -> tuple[ImageService, AudioService]:
    files = FalFiles.build(
        http,
        rest_url=settings.fal_rest_url,
        pool=pool,
        retry_budget=settings.retry_budget,
        metrics=metrics,
        max_bytes=settings.max_media_bytes,
        timeout=settings.media_fetch_timeout,
        total_timeout=settings.request_timeout,
    )
    catalog.add_media(media_model_ids())
    return (
        ImageService(settings, fal, files, catalog, meter),
        AudioService(settings, fal, files, catalog, meter),
    )
