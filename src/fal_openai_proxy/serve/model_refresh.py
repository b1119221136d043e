"""The live model list (FAL_MODELS_REFRESH=1): a background task that reads fal's platform
list every FAL_MODELS_REFRESH_INTERVAL and hands it to the catalog through `LiveModels`.

Nothing waits for it: start-up starts the task and goes on, and /v1/models shows whatever
list is there (the built-in one until the first fetch succeeds). A failed refresh keeps the
previous list, counts in /metrics, and logs one warning per run of failures.

With REDIS_URL, one replica (the holder of a lock with expiry) fetches and publishes the list;
the others read it. With Redis down, or nothing published yet, each replica fetches for itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from typing import Any

from ..base.metrics import Metrics
from ..base.tasks import cancel_and_wait
from ..fal.platform import PlatformError, PlatformModel, list_models
from ..fal.transport import Transport
from ..store.redis import RedisStore

log = logging.getLogger(__name__)
RETRY_AFTER_FAILURE = 60.0  # seconds; sooner than the interval, so start-up blips heal fast
FOLLOWER_POLL = 60.0  # seconds between a follower's reads of the shared list
SHARED_NAME = "live-models"  # the lock and the published list in Redis


class LiveModels:
    """The latest list; a `catalog.ModelSource`. `snapshot()`/`load()` carry it as JSON
    (e.g. for replicas sharing one refreshed list through Redis)."""

    def __init__(self) -> None:
        self._models: tuple[PlatformModel, ...] = ()
        self.updated_at: float | None = None  # time.time() of the last successful refresh

    def latest(self) -> Sequence[PlatformModel]:
        return self._models

    def update(self, models: Sequence[PlatformModel]) -> None:
        self._models = tuple(models)
        self.updated_at = time.time()

    def snapshot(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self._models]

    def load(self, raw: Sequence[dict[str, Any]]) -> None:
        self.update([PlatformModel.from_json(item) for item in raw])


class ModelRefresher:
    def __init__(
        self,
        http: Transport,
        *,
        api_url: str,
        key: str | None,
        categories: Collection[str],
        interval: float,
        source: LiveModels,
        metrics: Metrics,
        store: RedisStore | None = None,
    ) -> None:
        self._http = http
        self._api_url = api_url
        self._key = key  # a server FAL_KEY (raises fal's rate limits), never a client's
        self._categories = frozenset(categories)
        self._interval = interval
        self.source = source
        self._metrics = metrics
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._store = store

    async def refresh(self) -> bool:
        """One fetch of every page; the list is replaced only if all of it was read."""
        try:
            models = await list_models(
                self._http, self._api_url, categories=self._categories, key=self._key
            )
        except Exception as exc:  # PlatformError; anything else is a bug, but must not end the task
            reason = str(exc) if isinstance(exc, PlatformError) else type(exc).__name__
            self._metrics.model_refresh_failures.inc()
            if not self._failing:
                kept = "the previous list" if self.source.updated_at else "the built-in list"
                log.warning("model list refresh failed: %s; keeping %s", reason, kept)
            self._failing = True
            return False
        if self._failing:
            log.info("model list refresh works again")
        self._failing = False
        self.source.update(models)
        log.debug("model list refreshed: %d live models", len(models))
        return True

    async def tick(self) -> float:
        """One round: fetch (and publish, as the leader), or read the leader's list.
        Returns how long to wait before the next round."""
        store, interval = self._store, self._interval
        if store is not None and store.up and not await store.hold_lock(SHARED_NAME, 2 * interval):
            raw = await store.get_json(SHARED_NAME)
            if raw is not None and self._load_shared(raw):  # another replica fetched it
                return min(interval, FOLLOWER_POLL)
        ok = await self.refresh()
        if ok and store is not None and store.up:
            await store.set_json(SHARED_NAME, self.source.snapshot(), 3 * interval)
        return interval if ok else min(interval, RETRY_AFTER_FAILURE)

    def _load_shared(self, raw: Any) -> bool:
        """The list another replica published; False for anything else found there (anyone
        with access to Redis may have written garbage): then this replica fetches its own."""
        try:
            self.source.load(raw)
        except (TypeError, KeyError, AttributeError, ValueError):
            log.warning("ignoring a model list in Redis that is not one")
            return False
        return True

    async def run(self) -> None:
        while True:
            wait = await self.tick()
            await asyncio.sleep(wait)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="model-refresh")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
