"""What every fal call sends: the key, and on calls that start work, fal's start timeout."""

from __future__ import annotations

import math

import pytest

from fal_openai_proxy.fal.errors import parse_error_response
from fal_openai_proxy.fal.wire import key_headers


@pytest.mark.parametrize(
    ("left", "sent"),
    [(600.0, "599"), (599.2, "599"), (3.0, "2"), (2.5, "2"), (2.0, None), (1.5, None)],
)
def test_the_start_timeout_is_whole_seconds_below_the_time_left(
    left: float, sent: str | None
) -> None:
    # fal's clients refuse 1 s or less; fal must give up before the proxy does.
    assert key_headers("k", time_left=left).get("X-Fal-Request-Timeout") == sent


@pytest.mark.parametrize("left", [None, math.inf, math.nan, -5.0])
def test_no_start_timeout_without_a_finite_time_left(left: float | None) -> None:
    assert "X-Fal-Request-Timeout" not in key_headers("k", time_left=left)


def test_a_504_of_our_own_start_timeout_is_never_retried() -> None:
    headers = {"x-fal-request-timeout-type": "user", "x-fal-request-id": "r"}
    error = parse_error_response(504, headers, b'{"detail": "Request timed out"}')
    assert error.retryable is False
    assert parse_error_response(504, {}, b'{"detail": "Gateway timeout"}').retryable is None
