"""Prometheus metrics, one registry per application (no process-global state).

With WORKERS > 1 the supervisor sets PROMETHEUS_MULTIPROC_DIR before starting the workers:
prometheus-client then keeps every value in a file per process, and /metrics, whichever worker
answers, adds up the whole group. A single process keeps the in-memory registry (no file
writes on the request path).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
SYNC_INTERVAL = 1.0  # seconds between copies of the function gauges to the shared files
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, multiprocess: bool | None = None) -> None:
        if multiprocess is None:
            multiprocess = bool(os.environ.get(MULTIPROC_DIR_ENV))
        self.multiprocess = multiprocess
        # Function gauges are read at scrape time in one process; across processes their
        # values are copied to the shared files by sync() instead.
        self._sampled: list[tuple[Any, Callable[[], float]]] = []
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "fal_proxy_requests", "Requests by route, model and status.",
            ["route", "model", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "fal_proxy_request_duration_seconds", "Time to the end of the response.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "fal_proxy_time_to_first_token_seconds", "Time to the first content of a stream.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "fal_proxy_upstream_errors", "fal failures by fal error type.", ["type"], registry=r
        )
        self.upstream_routes = Counter(
            "fal_proxy_upstream_route_requests", "Requests by endpoint and the fal route taken.",
            ["endpoint", "route"], registry=r,
        )  # fmt: skip
        self.retries = Counter("fal_proxy_upstream_retries", "Retried fal calls.", registry=r)
        self.model_refresh_failures = Counter(
            "fal_proxy_model_refresh_failures",
            "Failed refreshes of the live model list (FAL_MODELS_REFRESH).", registry=r,
        )  # fmt: skip
        self.pricing_refresh_failures = Counter(
            "fal_proxy_pricing_refresh_failures",
            "Failed refreshes of fal's unit prices (docs/operations.md, Cost).", registry=r,
        )  # fmt: skip
        self.streams_in_flight = Gauge(
            "fal_proxy_streams_in_flight", "Open streams to clients.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.requests_in_flight = Gauge(
            "fal_proxy_requests_in_flight", "Chat requests being served.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.key_in_flight = Gauge(
            "fal_proxy_key_in_flight", "Requests holding each fal key (all workers).",
            ["key_index"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.key_healthy = Gauge(
            "fal_proxy_key_healthy", "1 unless the key is cooling down (in any worker).",
            ["key_index"], registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self.key_limit = Gauge(
            "fal_proxy_key_concurrency_limit",
            "Requests each fal key may have in flight (learned, or FAL_KEY_CONCURRENCY); "
            "+Inf: no limit yet.",
            ["key_index"], registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self._request_counters: dict[tuple[str, str, int], Any] = {}
        self._latency_histograms: dict[str, Any] = {}
        if multiprocess:
            self.requests_in_flight.set_function = partial(  # type: ignore[method-assign]
                self._sample, self.requests_in_flight
            )
            workers = Gauge(
                "fal_proxy_workers", "Live worker processes.", multiprocess_mode="livesum"
            )
            workers.set(1)

    def count_request(self, route: str, model: str, status: int, seconds: float) -> None:
        """One request's count and duration. The labelled children are kept (prometheus-
        client's `labels()` validates and locks on every call); every label is bounded."""
        key = (route, model, status)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.requests.labels(route, model, str(status))
        counter.inc()
        histogram = self._latency_histograms.get(route)
        if histogram is None:
            histogram = self._latency_histograms[route] = self.latency.labels(route)
        histogram.observe(seconds)

    def _sample(self, gauge: Any, function: Callable[[], float]) -> None:
        if self.multiprocess:
            self._sampled.append((gauge, function))
        else:
            gauge.set_function(function)

    def watch_keys(
        self,
        count: int,
        *,
        in_flight: Callable[[int], int],
        healthy: Callable[[int], bool],
        limit: Callable[[int], int | None],
    ) -> None:
        """Key state is read at scrape time through these callables, by index (never the key
        itself). A key without a limit reports +Inf."""
        for index in range(count):
            label = str(index)
            self._sample(self.key_in_flight.labels(label), partial(_number, in_flight, index))
            self._sample(self.key_healthy.labels(label), partial(_number, healthy, index))
            self._sample(self.key_limit.labels(label), partial(_number, limit, index))

    def watch_redis(self, up: Callable[[], bool]) -> None:
        """With REDIS_URL: whether Redis answers (read at scrape time), and its failures."""
        self.redis_up = Gauge(
            "fal_proxy_redis_up", "1 while Redis answers (0 if any worker serves without it).",
            registry=self.registry, multiprocess_mode="livemin",
        )  # fmt: skip
        self.redis_errors = Counter(
            "fal_proxy_redis_errors",
            "Failed Redis calls (each one falls back to per-process state).",
            registry=self.registry,
        )
        self._sample(self.redis_up, lambda: float(up()))

    def watch_usage(self, queued: Callable[[], int], up: Callable[[], bool]) -> None:
        """With DATABASE_URL: the usage records waiting, the database's state, and what every
        request cost, overall by model and per client key."""
        r = self.registry
        self.usage_dropped = Counter(
            "fal_proxy_usage_records_dropped",
            "Usage records lost: the queue was full (USAGE_QUEUE_MAX) while the database was "
            "down or slow.", registry=r,
        )  # fmt: skip
        self.usage_queued = Gauge(
            "fal_proxy_usage_records_queued", "Usage records waiting to be written.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.database_up = Gauge(
            "fal_proxy_database_up",
            "1 while usage is written to the database (0 if any worker cannot write).",
            registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self._sample(self.usage_queued, lambda: float(queued()))
        self.cost = Counter(
            "fal_proxy_cost_usd", "What requests cost, in USD, where the cost is known.",
            ["model"], registry=r,
        )  # fmt: skip
        self.key_requests = Counter(
            "fal_proxy_key_requests", "Requests by client key: a virtual key's name, or static, "
            "passthrough or open.", ["key"], registry=r,
        )  # fmt: skip
        self.key_cost = Counter(
            "fal_proxy_key_cost_usd", "What requests cost, in USD, by client key (as above).",
            ["key"], registry=r,
        )  # fmt: skip
        self._sample(self.database_up, lambda: float(up()))

    def count_redis_error(self) -> None:
        self.redis_errors.inc()

    def sync(self) -> None:
        for gauge, function in self._sampled:
            gauge.set(function())

    def start_sync(self, interval: float = SYNC_INTERVAL) -> threading.Thread:
        """In a worker: keep the shared copies of the function gauges fresh."""

        def loop() -> None:
            while not stop.wait(interval):
                self.sync()

        stop = threading.Event()
        thread = threading.Thread(target=loop, name="metrics-sync", daemon=True)
        thread.start()
        return thread

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        self.sync()  # this worker's gauges are exact; the others' at most SYNC_INTERVAL old
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def _number(read: Callable[[int], float | None], index: int) -> float:
    value = read(index)
    return math.inf if value is None else float(value)
