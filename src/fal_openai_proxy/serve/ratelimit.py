"""Per-client limits: requests per minute (the `limits` library; Redis-shared when
REDIS_URL is set, so all replicas enforce one limit) and requests in flight per process.
While Redis is down the per-minute counters are kept in memory, per process."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from ..openai.errors import rate_limited
from ..store.redis import CALL_TIMEOUT, RedisStore

_NS = "fal-openai-proxy"  # key prefix in shared storage


class ClientLimiter:
    def __init__(
        self,
        *,
        rpm: int,
        max_concurrent: int,
        redis_url: str | None,
        shared: RedisStore | None = None,
    ) -> None:
        self._item = RateLimitItemPerMinute(rpm) if rpm > 0 else None
        self._max_concurrent = max_concurrent
        self._in_flight: Counter[str] = Counter()
        self._limiter: MovingWindowRateLimiter | None = None
        if self._item is not None:
            uri = _async_uri(redis_url) if redis_url else "async+memory://"
            self._limiter = MovingWindowRateLimiter(storage_from_string(uri))
        self._shared = shared
        self._fallback: MovingWindowRateLimiter | None = None
        if self._item is not None and redis_url and shared is not None:
            self._fallback = MovingWindowRateLimiter(storage_from_string("async+memory://"))

    @property
    def active(self) -> bool:
        return self._limiter is not None or self._max_concurrent > 0

    async def admit(self, client: str) -> None:
        """Count one request for `client`, or raise 429 with Retry-After."""
        limiter, item = self._limiter, self._item
        if limiter is not None and item is not None:
            if self._fallback is not None:
                limiter = await self._hit_shared(limiter, self._fallback, item, client)
            elif await limiter.hit(item, _NS, client):
                limiter = None
        if limiter is not None and item is not None:
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    stats = await limiter.get_window_stats(item, _NS, client)
                wait = max(1.0, stats.reset_time - time.time())
            except Exception:  # Redis went away since the hit: the refusal stands
                wait = 1.0
            raise rate_limited(f"Rate limit reached: {item.amount} requests per minute.", wait)
        if self._max_concurrent and self._in_flight[client] >= self._max_concurrent:
            raise rate_limited(
                f"Too many requests in flight: at most {self._max_concurrent} at once.", 1.0
            )
        self._in_flight[client] += 1

    async def _hit_shared(
        self,
        shared_limiter: MovingWindowRateLimiter,
        fallback: MovingWindowRateLimiter,
        item: RateLimitItemPerMinute,
        client: str,
    ) -> MovingWindowRateLimiter | None:
        """Count a hit in Redis, or in memory while Redis is down; the limiter that refused
        it, or None."""
        shared = self._shared
        assert shared is not None
        if shared.up:
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    allowed: bool = await shared_limiter.hit(item, _NS, client)
                    return None if allowed else shared_limiter
            except Exception as exc:  # whatever the storage raises: serve without it
                shared.failed(exc)
        return None if await fallback.hit(item, _NS, client) else fallback

    def done(self, client: str) -> None:
        self._in_flight[client] -= 1
        if self._in_flight[client] <= 0:
            del self._in_flight[client]


def _async_uri(url: str) -> str:
    """`redis://…` -> `async+redis://…`, the form `limits` wants for asyncio."""
    return url if url.startswith("async+") else f"async+{url}"
