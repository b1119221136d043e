"""Prometheus metrics, one registry per application (no process-global state)."""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .fal.keys import KeyPool

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
        self.upstream_routes = Counter(
            "fal_proxy_upstream_route_requests", "Requests by endpoint and the fal route taken.",
            ["endpoint", "route"], registry=r,
        )  # fmt: skip
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

    def watch_key_pool(self, pool: KeyPool) -> None:
        """Key state is read at scrape time, by index (never the key itself)."""
        for index in range(len(pool)):
            label = str(index)
            self.key_in_flight.labels(label).set_function(partial(_in_flight, pool, index))
            self.key_healthy.labels(label).set_function(partial(_healthy, pool, index))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _in_flight(pool: KeyPool, index: int) -> float:
    return float(pool.states[index].in_flight)


def _healthy(pool: KeyPool, index: int) -> float:
    return float(pool.is_healthy(index))
