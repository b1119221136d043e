"""State shared by every replica through Redis (REDIS_URL), and what happens when Redis is gone.

Every call has a short deadline. A failed call marks the store down: callers then serve on their
own per-process state (no Redis call is even tried while down, so an outage costs nothing per
request), the fact is logged once and counted in /metrics, and a background probe rejoins when
Redis answers again. A Redis outage must never become a proxy outage.

Client library: redis-py (`redis.asyncio`), the maintained reference client, typed, with Lua
scripts (EVALSHA with a NOSCRIPT fallback) built in. `limits` keeps using its own coredis
connection for the per-minute counters; they share nothing but the URL.

Beyond the key pool (fal/cluster.py), the store offers two primitives for anything else one
replica computes and the others read (such as the live model list): a JSON value with a TTL, and
a leader lock with expiry (`hold_lock`: the holder renews it; if it dies, another takes over).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from ..base.metrics import Metrics
from ..base.tasks import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")

# The hash tag keeps every key in one slot, so that multi-key scripts also run on Redis Cluster.
NAMESPACE = "{fal-openai-proxy}"
CALL_TIMEOUT = 0.25  # seconds for one Redis call; longer means "down"
TICK_INTERVAL = 1.0  # seconds between background ticks (state refresh, or a probe while down)
PROBE_INTERVAL = 2.0  # seconds between reconnection attempts while down
# Connections per process. Calls beyond wait for one (within CALL_TIMEOUT): a call takes well
# under a millisecond, so this serves thousands of requests in flight.
MAX_CONNECTIONS = 64

# SET the lock if free, or renew it if we already hold it; 1 if we hold it now.
_HOLD_LOCK = """
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SharedDown(Exception):
    """Redis is unreachable (or just failed): use per-process state."""


class RedisStore:
    """One Redis connection pool for this process, with up/down tracking."""

    def __init__(
        self,
        url: str,
        *,
        metrics: Metrics,
        timeout: float = CALL_TIMEOUT,
        probe_interval: float = PROBE_INTERVAL,
        tick_interval: float = TICK_INTERVAL,
    ) -> None:
        # No client-side retries: a failure is reported at once and the caller falls back.
        # A blocking pool: redis-py's default one raises once 100 calls are in flight.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=None,  # waiting for a connection is bounded by run()'s deadline
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._redis: Redis = Redis.from_pool(pool)  # closed with the client
        self._timeout = timeout
        self._probe_interval = probe_interval
        self._tick_interval = tick_interval
        self._metrics = metrics
        self._up = False
        self._announced = False  # whether "down" was already logged for this outage
        self._ticks: list[Callable[[], Awaitable[None]]] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None
        # This process among the replicas: lease and lock owner ids.
        self.replica_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._hold_lock = self.script(_HOLD_LOCK)
        self._release_lock = self.script(_RELEASE_LOCK)
        metrics.watch_redis(lambda: self._up)

    @property
    def up(self) -> bool:
        return self._up

    def key(self, name: str) -> str:
        return f"{NAMESPACE}:{name}"

    def script(self, source: str) -> AsyncScript:
        return self._redis.register_script(source)

    def on_tick(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` every TICK_INTERVAL while Redis is up (failures mark it down)."""
        self._ticks.append(callback)

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` at close, before the connection goes (failures are ignored)."""
        self._closers.append(callback)

    async def start(self) -> None:
        """Connect (or note that Redis is down) and start the background loop; never raises."""
        if await self._probe():
            await self._run_ticks()
        self._task = asyncio.create_task(self._loop(), name="shared-store")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        for closer in self._closers:
            with contextlib.suppress(Exception):
                await closer()
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def run(self, call: Callable[[Redis], Awaitable[T]]) -> T:
        """`call(redis)` within the deadline, or SharedDown (at once while Redis is down)."""
        if not self._up:
            raise SharedDown
        try:
            async with asyncio.timeout(self._timeout):
                return await call(self._redis)
        except Exception as exc:
            # Whatever a dying connection raises (redis-py's errors, OSError, a timeout, or
            # uvloop's RuntimeError on a closed transport): Redis is down for us, and the
            # caller serves on per-process state. A Redis outage must not be a proxy outage.
            self.failed(exc)
            raise SharedDown from exc

    async def run_script(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        return await self.run(lambda redis: script(keys=keys, args=args, client=redis))

    def failed(self, exc: BaseException) -> None:
        """A Redis call failed (here or in another client, such as `limits`): go down."""
        self._metrics.count_redis_error()
        if self._up:
            self._up = False
            if not self._announced:
                self._announced = True
                log.warning(
                    "Redis unreachable (%s); serving on per-process state", type(exc).__name__
                )

    # -- primitives for one-writer, many-readers state ----------------------------------------

    async def get_json(self, name: str) -> Any | None:
        """The value stored under `name`, or None (absent, expired, not JSON, or Redis down):
        anyone with access to Redis may have written garbage there."""
        try:
            raw = await self.run(lambda redis: redis.get(self.key(name)))
        except SharedDown:
            return None
        if raw is None:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("ignoring a value in Redis that is not JSON: %s", name)
            return None

    async def set_json(self, name: str, value: Any, ttl: float) -> bool:
        """Store `value` for `ttl` seconds; False if Redis is down."""
        data = orjson.dumps(value)
        try:
            await self.run(lambda redis: redis.set(self.key(name), data, px=_ms(ttl)))
        except SharedDown:
            return False
        return True

    async def first_json(self, name: str, value: Any, ttl: float) -> Any:
        """Store `value` for `ttl` seconds unless a value is there already; the value that
        stands: ours, or the one another replica stored first (`value` if Redis is down)."""
        data = orjson.dumps(value)
        key = self.key(name)
        try:
            if await self.run(lambda redis: redis.set(key, data, px=_ms(ttl), nx=True)):
                return value
            raw = await self.run(lambda redis: redis.get(key))
        except SharedDown:
            return value
        try:
            return value if raw is None else orjson.loads(raw)
        except orjson.JSONDecodeError:
            return value

    async def hold_lock(self, name: str, ttl: float) -> bool:
        """Take or renew the lock `name` for `ttl` seconds; True while this replica holds it.

        False when another replica holds it, and when Redis is down (callers then act alone)."""
        try:
            got = await self.run_script(
                self._hold_lock, [self.key(f"lock:{name}")], [self.replica_id, _ms(ttl)]
            )
        except SharedDown:
            return False
        return bool(got)

    async def release_lock(self, name: str) -> None:
        with contextlib.suppress(SharedDown):
            await self.run_script(self._release_lock, [self.key(f"lock:{name}")], [self.replica_id])

    # -- background ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval if self._up else self._probe_interval)
            if self._up or await self._probe():
                await self._run_ticks()

    async def _probe(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.ping()
        except Exception as exc:  # as in run(): any failure means down, and the loop goes on
            self._up = True  # so that failed() announces it once
            self.failed(exc)
            return False
        self._up = True
        if self._announced:
            self._announced = False
            log.warning("Redis reachable again; sharing state across replicas")
        else:
            log.info("Redis reachable; sharing state across replicas")
        return True

    async def _run_ticks(self) -> None:
        for tick in self._ticks:
            if not self._up:
                return
            try:
                await tick()
            except SharedDown:
                return
            except Exception:  # a bug in a tick must not stop the loop
                log.exception("shared state refresh failed")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
