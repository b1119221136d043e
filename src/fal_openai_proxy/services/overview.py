"""GET /admin/overview: how the proxy is doing now, for the console's first page.

Traffic (requests per minute, error rate, p50/p99 latency) is this process's, read from its
Prometheus metrics by a background sampler: the request path does no extra work for it. The
cost of the day is every replica's, from the accounts database when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..base.metrics import Metrics
from ..fal.keys import KeyPool
from ..store.redis import RedisStore

SAMPLE_INTERVAL = 5.0  # seconds between samples of the metrics
RATE_WINDOW = 60.0  # requests per minute: over the last minute
STATS_WINDOW = 300.0  # error rate and latency: over the last five minutes
_API_PREFIXES = ("/v1/", "/api/")  # client traffic; not the console, admin, health or docs


@dataclass(frozen=True, slots=True)
class Sample:
    """Totals of API traffic since the process started, at one moment."""

    at: float  # monotonic seconds
    requests: float
    errors: float  # answered with a status of 400 or more
    bounds: tuple[float, ...]  # latency histogram upper bounds, +Inf last
    counts: tuple[float, ...]  # requests at or under each bound (cumulative)


def read_sample(metrics: Metrics, at: float) -> Sample:
    requests = errors = 0.0
    for family in metrics.requests.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total") or not _is_api(sample.labels["route"]):
                continue
            requests += sample.value
            if sample.labels["status"][:1] in ("4", "5"):
                errors += sample.value
    buckets: dict[float, float] = {}
    for family in metrics.latency.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket") and _is_api(sample.labels["route"]):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    bounds = tuple(sorted(buckets))
    return Sample(at, requests, errors, bounds, tuple(buckets[b] for b in bounds))


def _is_api(route: str) -> bool:
    return route.startswith(_API_PREFIXES)


def quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated within its bucket as
    Prometheus's histogram_quantile does; None without observations."""
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return previous_bound  # beyond the last bound: the most that can be said
            if count == previous_count:
                return bound
            share = (rank - previous_count) / (count - previous_count)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


class TrafficWindow:
    """Samples of the metrics over the last STATS_WINDOW, taken in the background."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._samples: deque[Sample] = deque(maxlen=int(STATS_WINDOW / SAMPLE_INTERVAL) + 2)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sample()
        self._task = asyncio.create_task(self._loop(), name="overview-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.sample()

    def sample(self) -> Sample:
        sample = read_sample(self._metrics, self._clock())
        self._samples.append(sample)
        return sample

    def _since(self, now: Sample, window: float) -> Sample:
        """The oldest sample within `window` of `now` (`now` itself if there is none)."""
        for sample in self._samples:
            if now.at - sample.at <= window:
                return sample
        return now

    def stats(self) -> dict[str, Any]:
        now = read_sample(self._metrics, self._clock())
        minute = self._since(now, RATE_WINDOW)
        elapsed = now.at - minute.at
        count = now.requests - minute.requests
        rpm: float | None = count  # a process younger than a minute: all it served
        if self._samples and self._samples[0] is not minute:
            # The minute's first sample is up to SAMPLE_INTERVAL younger than a minute.
            rpm = count * RATE_WINDOW / elapsed if elapsed > 0 else None
        base = self._since(now, STATS_WINDOW)
        requests = now.requests - base.requests
        counts = [
            c - (base.counts[i] if i < len(base.counts) and base.bounds == now.bounds else 0.0)
            for i, c in enumerate(now.counts)
        ]
        p50, p99 = quantile(0.5, now.bounds, counts), quantile(0.99, now.bounds, counts)
        return {
            "requests_per_minute": round(rpm, 2) if rpm is not None else None,
            "window_seconds": round(now.at - base.at, 1),
            "requests": int(requests),
            "error_rate": round((now.errors - base.errors) / requests, 4) if requests else None,
            "latency_p50_ms": round(p50 * 1000, 1) if p50 is not None else None,
            "latency_p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
        }


# What the accounts database tells the overview: the cost and requests of the UTC day so far
# (None: no database, or it cannot be read), and whether it answers ("up" | "down" | "off").
UsageToday = Callable[[], Awaitable[dict[str, Any] | None]]
DatabaseState = Callable[[], Awaitable[str]]


async def _no_usage() -> dict[str, Any] | None:
    return None


async def _no_database() -> str:
    return "off"


class OverviewService:
    def __init__(
        self,
        traffic: TrafficWindow,
        pool: KeyPool | None,
        redis: RedisStore | None,
        *,
        usage_today: UsageToday = _no_usage,
        database: DatabaseState = _no_database,
    ) -> None:
        self.traffic = traffic
        self._pool = pool
        self._redis = redis
        self._usage_today = usage_today
        self._database = database
        self._started = time.time()

    def use_database(self, usage_today: UsageToday, database: DatabaseState) -> None:
        """DATABASE_URL: the day's cost and the database's state come from it."""
        self._usage_today = usage_today
        self._database = database

    async def overview(self, *, in_flight: int, streams: int) -> dict[str, Any]:
        today, database = await asyncio.gather(self._usage_today(), self._database())
        return {
            "object": "overview",
            "version": __version__,
            "uptime_seconds": round(time.time() - self._started),
            "traffic": {**self.traffic.stats(), "in_flight": in_flight, "streams": streams},
            "today": today,
            "mode": "pool" if self._pool is not None else "passthrough",
            "keys": self.keys(),
            "redis": "off" if self._redis is None else "up" if self._redis.up else "down",
            "database": database,
        }

    def keys(self) -> list[dict[str, Any]]:
        pool = self._pool
        if pool is None:
            return []
        now = time.time()
        keys = []
        for index in range(len(pool)):
            bench = pool.bench(index)
            keys.append(
                {
                    "index": index,
                    "fingerprint": pool.fingerprint(index),
                    "state": "healthy" if bench is None else "benched",
                    "benched_until": round(now + bench[0]) if bench else None,
                    "bench_reason": bench[1] if bench else None,
                    "limit": pool.limit(index),
                    "limit_learned": pool.adaptive,
                    "in_flight": pool.in_flight(index),
                }
            )
        return keys
