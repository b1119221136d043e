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
        self._redis_url = redis_url
        self._shared = shared
        self._limiter: MovingWindowRateLimiter | None = None
        self._fallback: MovingWindowRateLimiter | None = None
        self._key_items: dict[int, RateLimitItemPerMinute] = {}  # virtual keys' rpm
        if self._item is not None:
            self._make_limiters()

    def _make_limiters(self) -> MovingWindowRateLimiter:
        if self._limiter is None:
            url = self._redis_url
            uri = _async_uri(url) if url else "async+memory://"
            self._limiter = MovingWindowRateLimiter(storage_from_string(uri))
            if url and self._shared is not None:
                self._fallback = MovingWindowRateLimiter(storage_from_string("async+memory://"))
        return self._limiter

    @property
    def active(self) -> bool:
        return self._item is not None or self._max_concurrent > 0

    async def admit(self, client: str) -> None:
        """Count one request for `client`, or raise 429 with Retry-After."""
        item = self._item
        if item is not None:
            message = f"Rate limit reached: {item.amount} requests per minute."
            await self._count(item, (_NS, client), message)
        if self._max_concurrent and self._in_flight[client] >= self._max_concurrent:
            raise rate_limited(
                f"Too many requests in flight: at most {self._max_concurrent} at once.", 1.0
            )
        self._in_flight[client] += 1

    async def admit_key(self, client: str, rpm: int) -> None:
        """A virtual key's own `rpm`, counted like RATE_LIMIT_RPM (across replicas with
        REDIS_URL); 429 with Retry-After beyond it."""
        item = self._key_items.get(rpm)
        if item is None:
            item = self._key_items[rpm] = RateLimitItemPerMinute(rpm)
            self._make_limiters()
        message = f"Rate limit reached: this key allows {rpm} requests per minute."
        await self._count(item, (_NS, "key", client), message)

    async def _count(
        self, item: RateLimitItemPerMinute, names: tuple[str, ...], message: str
    ) -> None:
        limiter = self._limiter
        assert limiter is not None
        refused: MovingWindowRateLimiter | None = limiter
        if self._fallback is not None:
            refused = await self._hit_shared(limiter, self._fallback, item, names)
        elif await limiter.hit(item, *names):
            refused = None
        if refused is None:
            return
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                stats = await refused.get_window_stats(item, *names)
            wait = max(1.0, stats.reset_time - time.time())
        except Exception:  # Redis went away since the hit: the refusal stands
            wait = 1.0
        raise rate_limited(message, wait)

    async def _hit_shared(
        self,
        shared_limiter: MovingWindowRateLimiter,
        fallback: MovingWindowRateLimiter,
        item: RateLimitItemPerMinute,
        names: tuple[str, ...],
    ) -> MovingWindowRateLimiter | None:
        """Count a hit in Redis, or in memory while Redis is down; the limiter that refused
        it, or None."""
        shared = self._shared
        assert shared is not None
        if shared.up:
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    allowed: bool = await shared_limiter.hit(item, *names)
                    return None if allowed else shared_limiter
            except Exception as exc:  # whatever the storage raises: serve without it
                shared.failed(exc)
        return None if await fallback.hit(item, *names) else fallback

    def done(self, client: str) -> None:
        self._in_flight[client] -= 1
        if self._in_flight[client] <= 0:
            del self._in_flight[client]


def _async_uri(url: str) -> str:
    """`redis://…` -> `async+redis://…`, the form `limits` wants for asyncio."""
    return url if url.startswith("async+") else f"async+{url}"
