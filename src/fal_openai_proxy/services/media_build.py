"""Builds the media services from the settings (called once by `create_app`)."""

from __future__ import annotations

from ..catalog import Catalog
from ..fal.client import FalClient
from ..fal.files import FalFiles
from ..fal.http import HttpClient
from ..fal.keys import KeyPool
from ..fal.media_apps import media_model_ids
from ..fal.media_fetch import DEFAULT_MEDIA_HOSTS, MediaFetcher, MediaPolicy
from ..metrics import Metrics
from ..settings import Settings
from .audio import AudioService
from .images import ImageService


def build_media_fetcher(settings: Settings, http: HttpClient) -> MediaFetcher:
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


def build_media(
    settings: Settings,
    http: HttpClient,
    pool: KeyPool | None,
    fal: FalClient,
    catalog: Catalog,
    metrics: Metrics,
) -> tuple[ImageService, AudioService]:
    files = FalFiles.build(
        http,
        build_media_fetcher(settings, http),
        rest_url=settings.fal_rest_url,
        pool=pool,
        retry_budget=settings.retry_budget,
        metrics=metrics,
        timeout=settings.media_fetch_timeout,
    )
    catalog.add_media(media_model_ids())
    return ImageService(settings, fal, files, catalog), AudioService(settings, fal, files, catalog)
