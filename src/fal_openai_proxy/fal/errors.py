"""fal failures, and how each one reaches an OpenAI client (docs: openai-conformance.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..openai.errors import (
    AUTHENTICATION,
    INVALID_REQUEST,
    RATE_LIMIT,
    SERVER_ERROR,
    TIMEOUT,
    UPSTREAM_ERROR,
    ProxyError,
)


class FalError(Exception):
    """fal answered with an error status, or reported an error in a stream or queue status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        key_index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.request_id = request_id
        self.retryable = retryable
        self.retry_after = retry_after
        self.key_index = key_index

    @property
    def from_ingress(self) -> bool:
        """fal's ingress, not fal, answered: the work has certainly not started."""
        return self.request_id is None

    @property
    def kind(self) -> str:
        return self.error_type or f"http_{self.status}"


class FalConnectError(Exception):
    """The connection to fal could not be made: nothing was sent."""


class FalTLSError(FalConnectError):
    """fal's certificate could not be verified: retrying will not help."""


class FalRequestInvalid(Exception):
    """A request that must not be sent as it is (a line break in a key or URL)."""


class FalBrokenError(Exception):
    """The connection to fal broke after the request was sent."""


class FalTimeout(Exception):
    """One of the timeouts expired: connect, first_event, idle or total."""

    def __init__(self, which: str, seconds: float) -> None:
        super().__init__(f"fal did not answer in time ({which} timeout, {seconds:g} s)")
        self.which = which
        self.seconds = seconds


class KeysUnavailable(Exception):
    """No fal key can take the request: all refused, rate-limited, or busy."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def parse_error_response(
    status: int, headers: Mapping[str, str], body: bytes, key_index: int | None = None
) -> FalError:
    """Build a FalError from a non-2xx fal answer."""
    detail: Any = None
    error_type = headers.get("x-fal-error-type")
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        detail = parsed.get("detail", parsed.get("message", parsed.get("error")))
        error_type = parsed.get("error_type") or error_type
    retryable = headers.get("x-fal-retryable")
    return FalError(
        status,
        describe_detail(detail) or f"fal returned HTTP {status}",
        error_type=error_type if isinstance(error_type, str) else None,
        request_id=headers.get("x-fal-request-id"),
        retryable=None if retryable is None else retryable.strip().lower() == "true",
        retry_after=parse_retry_after(headers),
        key_index=key_index,
    )


def describe_detail(detail: Any) -> str:
    """fal's `detail`: a string, or FastAPI's list of {loc, msg}."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                msg = str(item.get("msg", "invalid"))
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("msg") or "")
    return ""


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    raw = headers.get("retry-after")
    try:
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        if raw is not None:
            return max(0.0, float(raw))
    except ValueError:
        return None
    return None


def to_proxy_error(exc: Exception, *, pass_through: bool) -> ProxyError:
    """The client's view of an upstream failure (the table in the core issue)."""
    if isinstance(exc, FalError):
        return _status_error(exc, pass_through)
    if isinstance(exc, FalTimeout):
        return ProxyError(504, str(exc), type=TIMEOUT, code="upstream_timeout")
    if isinstance(exc, FalConnectError):
        return ProxyError(
            502, "Could not connect to fal.", type=UPSTREAM_ERROR, code="upstream_unreachable"
        )
    if isinstance(exc, FalBrokenError):
        return ProxyError(
            502, "The connection to fal broke.", type=UPSTREAM_ERROR, code="upstream_disconnected"
        )
    if isinstance(exc, KeysUnavailable):
        return _keys_error(exc)
    if isinstance(exc, FalRequestInvalid):
        return ProxyError(400, f"The request cannot be sent to fal: {exc}.", type=INVALID_REQUEST)
    return ProxyError(502, "fal request failed.", type=UPSTREAM_ERROR, code="upstream_error")


def _status_error(exc: FalError, pass_through: bool) -> ProxyError:
    status, message = exc.status, exc.message
    if status == 422:
        return ProxyError(400, f"fal rejected the input: {message}", type=INVALID_REQUEST)
    if status in (401, 403):
        if pass_through:
            return ProxyError(
                401, f"fal refused the key: {message}", type=AUTHENTICATION, code="invalid_api_key"
            )
        return ProxyError(
            502, "fal refused the server's key.", type=UPSTREAM_ERROR, code="upstream_auth"
        )
    if status == 429:
        headers = {"Retry-After": str(max(1, round(exc.retry_after or 1)))}
        return ProxyError(
            429, f"fal is rate limiting: {message}", type=RATE_LIMIT,
            code="rate_limit_exceeded", headers=headers,
        )  # fmt: skip
    if status == 503:
        return ProxyError(503, f"fal is unavailable: {message}", type=SERVER_ERROR)
    if status == 504:
        return ProxyError(504, f"fal timed out: {message}", type=TIMEOUT, code="upstream_timeout")
    if 400 <= status < 500:
        return ProxyError(400, f"fal rejected the request: {message}", type=INVALID_REQUEST)
    return ProxyError(502, f"fal failed: {message}", type=UPSTREAM_ERROR, code="upstream_error")


def _keys_error(exc: KeysUnavailable) -> ProxyError:
    retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
    if exc.reason == "auth":
        return ProxyError(
            502, "fal refused every key of this server.", type=UPSTREAM_ERROR, code="upstream_auth"
        )
    message = (
        "All fal keys are rate limited; retry later."
        if exc.reason == "rate_limited"
        else "All fal keys are busy; retry later."
    )
    return ProxyError(429, message, type=RATE_LIMIT, code="rate_limit_exceeded", headers=retry)
