"""The pieces of the console's server side with no server: histogram quantiles, the traffic
window, and the session tokens' rules."""

from __future__ import annotations

import math
import time

import pytest
from starlette.types import Scope

from fal_openai_proxy.base.metrics import Metrics
from fal_openai_proxy.serve.console_auth import (
    COOKIE,
    ConsoleAuth,
    cookie_header,
    same_origin,
)
from fal_openai_proxy.services.overview import TrafficWindow, quantile

INF = math.inf


def test_quantiles_interpolate_within_a_bucket() -> None:
    bounds = (0.1, 0.5, 1.0, INF)
    assert quantile(0.5, bounds, (0, 0, 0, 0)) is None
    assert quantile(0.5, bounds, (10, 10, 10, 10)) == pytest.approx(0.05)
    # 4 requests under 0.1 s, 4 between 0.1 and 0.5 s: the median is the top of the first.
    assert quantile(0.5, bounds, (4, 8, 8, 8)) == pytest.approx(0.1)
    assert quantile(0.75, bounds, (4, 8, 8, 8)) == pytest.approx(0.3)
    # Beyond the last finite bound nothing more precise can be said.
    assert quantile(0.99, bounds, (0, 0, 1, 10)) == 1.0


def test_the_window_counts_api_traffic_since_its_samples() -> None:
    now = [1000.0]
    metrics = Metrics(multiprocess=False)
    window = TrafficWindow(metrics, clock=lambda: now[0])
    window.sample()
    for status, seconds in (("200", 0.02), ("200", 0.04), ("500", 2.0)):
        metrics.requests.labels("/v1/chat/completions", "m", status).inc()
        metrics.latency.labels("/v1/chat/completions").observe(seconds)
    metrics.requests.labels("/admin/overview", "", "200").inc()  # not client traffic
    metrics.latency.labels("/admin/overview").observe(9.0)
    now[0] += 30
    stats = window.stats()
    assert stats["requests"] == 3 and stats["requests_per_minute"] == 3
    assert stats["error_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert 25 <= stats["latency_p50_ms"] <= 50 and 1000 <= stats["latency_p99_ms"] <= 2500
    # Ten minutes on, with samples every 5 s and no traffic: all of it has left the window.
    for _ in range(120):
        now[0] += 5
        window.sample()
    stats = window.stats()
    assert stats["requests"] == 0 and stats["requests_per_minute"] == 0
    assert stats["error_rate"] is None and stats["latency_p50_ms"] is None


def scope(headers: dict[str, str], scheme: str = "http") -> Scope:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": "GET", "scheme": scheme, "headers": raw}


async def test_a_session_expires_and_a_new_admin_key_ends_it() -> None:
    auth = ConsoleAuth("an-admin-key-of-16+chars", session_ttl=3600)
    value, session = await auth.sign_in("an-admin-key-of-16+chars", "10.0.0.1")
    cookie = {"cookie": f"other=1; {COOKIE}={value}"}
    assert auth.session(scope(cookie)) == session
    assert session.expires_at == pytest.approx(time.time() + 3600, abs=2)
    # The same token, expired (signed correctly, as only the server can).
    payload = f"v1.{int(time.time()) - 7200}.{int(time.time()) - 1}.{session.id}"
    expired = f"{COOKIE}={payload}.{auth._sign(payload)}"
    assert auth.session(scope({"cookie": expired})) is None
    rotated = ConsoleAuth("a-new-admin-key-16+chars", session_ttl=3600)
    assert rotated.session(scope(cookie)) is None


def test_the_cookie_and_the_origin_rules() -> None:
    assert cookie_header("v", max_age=60, secure=True).endswith("; Secure")
    assert "Secure" not in cookie_header("v", max_age=60, secure=False)
    host = {"host": "proxy.example:3000"}
    assert same_origin(scope(host))  # not a browser: nothing to forge
    assert same_origin(scope({**host, "origin": "http://proxy.example:3000"}))
    assert not same_origin(scope({**host, "origin": "http://proxy.example:3000"}, "https"))
    assert not same_origin(scope({**host, "origin": "https://evil.example"}))
    # A browser's Sec-Fetch-Site decides (a Host rewritten by a reverse proxy cannot).
    assert same_origin(scope({"host": "10.0.0.2", "origin": "https://proxy.example",
                              "sec-fetch-site": "same-origin"}))  # fmt: skip
    assert not same_origin(scope({**host, "sec-fetch-site": "same-site"}))
