"""The background watcher of unfinished videos: it asks fal how each is doing, records the
answer in the table (for GET /v1/videos), sends the `video.completed` / `video.failed`
webhooks with retries, and learns which videos other replicas deleted.

With REDIS_URL one replica watches for the cluster (a lock it renews; if it dies another
takes over). Without Redis every replica watches; the table's claim on each event still lets
one replica send it. Without a database the watcher follows the videos this process created
(lost on restart) and only sends webhooks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

from ..base.settings import Settings
from ..base.tasks import cancel_and_wait
from ..fal.errors import FalError
from ..fal.transport import Transport
from ..openai.webhooks import signed_headers, video_event
from ..store.redis import RedisStore
from ..store.videos import DELIVERED, GAVE_UP, VideoStore
from .video_ids import VideoIds, VideoRef
from .videos import KEEP_SECONDS, JobState, VideoService

log = logging.getLogger(__name__)

LOCK = "video-watcher"
BATCH = 200  # open jobs asked about per tick
PARALLEL = 8  # fal status calls at once
# Seconds between delivery attempts of one event: 8 attempts over about 4 minutes.
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
DELIVERY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str


class VideoWatcher:
    def __init__(
        self,
        videos: VideoService,
        ids: VideoIds,
        http: Transport,
        shared: RedisStore | None,
        interval: float,
        webhook: Webhook | None,
    ) -> None:
        self._videos = videos
        self._store: VideoStore | None = videos.store
        self._ids = ids
        self._http = http
        self._shared = shared
        self._interval = interval
        self._webhook = webhook
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._deleted_since = int(time.time()) - KEEP_SECONDS
        self.delivered = 0  # events accepted by the endpoint (for tests and logs)

    @classmethod
    def build(
        cls,
        settings: Settings,
        videos: VideoService,
        http: Transport,
        shared: RedisStore | None,
    ) -> VideoWatcher | None:
        """A watcher where there is something to watch for: the table, or webhooks."""
        webhook = None
        if settings.video_webhook_url and settings.video_webhook_secret is not None:
            webhook = Webhook(
                settings.video_webhook_url, settings.video_webhook_secret.get_secret_value()
            )
        ids = videos.server_ids
        if ids is None or (videos.store is None and webhook is None):
            return None  # pass-through: no key of ours to ask fal with
        return cls(videos, ids, http, shared, settings.video_watch_interval, webhook)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="video-watcher")

    async def stop(self) -> None:
        for task in (self._task, *self._deliveries):
            await cancel_and_wait(task)
        if self._shared is not None and self._shared.up:
            await self._shared.release_lock(LOCK)

    async def _loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.tick()
            except Exception as exc:  # a database or fal outage: try again next tick
                if not failing:  # once per outage, not once per tick
                    log.warning("video watcher: %s; retrying every tick", type(exc).__name__)
                failing = True
            else:
                if failing:
                    log.warning("video watcher: working again")
                failing = False

    async def tick(self) -> None:
        if self._store is not None:
            await self._learn_deletions(self._store)
        shared = self._shared
        if shared is not None:
            held = await shared.hold_lock(LOCK, 3 * self._interval)
            if not held and shared.up:
                return  # another replica watches
        if self._store is not None:
            await self._follow_table(self._store)
        else:
            await self._follow_memory()

    async def _learn_deletions(self, store: VideoStore) -> None:
        for video_id, deleted_at in await store.deleted_since(self._deleted_since - 5):
            self._videos.deleted.add(video_id)
            self._deleted_since = max(self._deleted_since, deleted_at)

    async def _follow_table(self, store: VideoStore) -> None:
        rows = await store.open_jobs(BATCH)
        refs = [(row.id, self._ids.decode(row.id), row.progress) for row in rows]
        jobs = [(i, r, p) for i, r, p in refs if r is not None and r.key_tag]
        states = await self._states([r for _, r, _ in jobs])
        for (video_id, _, progress), state in zip(jobs, states, strict=True):
            if state is not None and (state.terminal or state.outcome.progress != progress):
                await store.record(video_id, state.outcome)
        if self._webhook is not None:
            for row in await store.unnotified(BATCH):
                if await store.claim_notification(row.id):
                    self._deliver(row.id, row.status, row.completed_at)

    async def _follow_memory(self) -> None:
        jobs = list(self._videos.open_jobs.items())
        states = await self._states([ref for _, ref in jobs])
        for (video_id, _), state in zip(jobs, states, strict=True):
            if state is not None and state.terminal:
                self._videos.open_jobs.pop(video_id, None)
                self._deliver(video_id, state.outcome.status, state.outcome.completed_at)

    async def _states(self, refs: list[VideoRef]) -> list[JobState | None]:
        gate = asyncio.Semaphore(PARALLEL)

        async def one(ref: VideoRef) -> JobState | None:
            async with gate:
                try:
                    return await self._videos.state(ref, None)
                except FalError as exc:  # fal cannot say now: ask next tick
                    log.info("video status unavailable: %s", exc.kind)
                    return None

        return list(await asyncio.gather(*(one(ref) for ref in refs)))

    # -- webhooks -----------------------------------------------------------------------------

    def _deliver(self, video_id: str, status: str, completed_at: int | None) -> None:
        if self._webhook is None:
            return
        task = asyncio.create_task(self._send(self._webhook, video_id, status, completed_at))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _send(
        self, webhook: Webhook, video_id: str, status: str, completed_at: int | None
    ) -> None:
        kind = "video.completed" if status == "completed" else "video.failed"
        event_id = "evt_" + hashlib.sha256(video_id.encode()).hexdigest()[:32]
        body = video_event(event_id, kind, completed_at or int(time.time()), video_id)
        for attempt, pause in enumerate((0.0, *BACKOFF)):
            await asyncio.sleep(pause)
            headers = signed_headers(webhook.secret, event_id, int(time.time()), body)
            try:
                async with asyncio.timeout(DELIVERY_TIMEOUT):
                    reply = await self._http.send("POST", webhook.url, headers, body)
                if 200 <= reply.status < 300:
                    self.delivered += 1
                    await self._settled(video_id, DELIVERED)
                    return
                reason = f"HTTP {reply.status}"
            except (FalError, TimeoutError, OSError) as exc:
                reason = type(exc).__name__
            log.warning("webhook %s not delivered (attempt %d: %s)", kind, attempt + 1, reason)
        log.error("webhook %s given up after %d attempts", kind, len(BACKOFF) + 1)
        await self._settled(video_id, GAVE_UP)

    async def _settled(self, video_id: str, state: int) -> None:
        if self._store is not None:
            try:
                await self._store.notified(video_id, state)
            except Exception:  # the claim expires and another attempt follows: at least once
                log.warning("webhook state not recorded", exc_info=True)
