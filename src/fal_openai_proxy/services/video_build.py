"""Builds the video service from the settings (called once by `create_app`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from ..catalog import Catalog
from ..fal.files import FalFiles
from ..fal.jobs import FalJobs
from ..fal.keys import KeyPool
from ..fal.retry import CallStarter
from ..fal.transport import Transport
from ..fal.video_apps import video_model_ids
from ..metrics import Metrics
from ..settings import Settings
from ..shared import SharedStore
from ..store.database import create_engine
from ..store.videos import SqlVideoStore
from .videos import VideoService


def build_videos(
    settings: Settings,
    http: Transport,
    pool: KeyPool | None,
    catalog: Catalog,
    metrics: Metrics,
    shared: SharedStore | None,
) -> tuple[VideoService, FalFiles, AsyncEngine | None]:
    starter = CallStarter(pool, settings.retry_budget, metrics)
    jobs = FalJobs(
        queue_url=settings.fal_queue_url,
        http=http,
        starter=starter,
        metrics=metrics,
        timeout=settings.first_event_timeout,
    )
    files = FalFiles(
        http,
        settings.fal_rest_url,
        starter,
        settings.max_media_bytes,
        settings.media_fetch_timeout,
        settings.request_timeout,
    )
    engine = create_engine(settings.database_url) if settings.database_enabled else None
    store = SqlVideoStore(engine) if engine is not None else None
    catalog.add_kinds(video_model_ids())
    return VideoService(settings, jobs, files, catalog, store, shared), files, engine
