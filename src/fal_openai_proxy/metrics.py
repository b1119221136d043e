"""Prometheus metrics, one registry per application (no process-global state)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
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
        self.retries = Counter("fal_proxy_upstream_retries", "Retried fal calls.", registry=r)
        self.streams_in_flight = Gauge(
            "fal_proxy_streams_in_flight", "Open streams to clients.", registry=r
        )
        self.requests_in_flight = Gauge(
            "fal_proxy_requests_in_flight", "Chat requests being served.", registry=r
        )
        self.key_in_flight = Gauge(
            "fal_proxy_key_in_flight", "Requests holding each fal key.", ["key_index"], registry=r
        )
        self.key_healthy = Gauge(
            "fal_proxy_key_healthy", "1 unless the key is cooling down.", ["key_index"], registry=r
        )
        self.key_limit = Gauge(
            "fal_proxy_key_concurrency_limit",
            "Requests each fal key may have in flight (learned, or FAL_KEY_CONCURRENCY); "
            "+Inf: no limit yet.",
            ["key_index"], registry=r,
        )  # fmt: skip

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
            self.key_in_flight.labels(label).set_function(partial(_number, in_flight, index))
            self.key_healthy.labels(label).set_function(partial(_number, healthy, index))
            self.key_limit.labels(label).set_function(partial(_number, limit, index))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _number(read: Callable[[int], float | None], index: int) -> float:
    value = read(index)
    return math.inf if value is None else float(value)
