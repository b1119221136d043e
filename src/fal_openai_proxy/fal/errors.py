"""fal failures, one tree named by family as httpx's `_exceptions.py` is.

    FalError                  any failure of a fal call
    ├── FalStatusError        fal answered with an error status, or a failed queue status
    ├── FalEventError         fal reported an error inside a stream event
    ├── FalTransportError     the connection failed
    │   ├── FalConnectError   nothing was sent  (FalTLSError: the certificate failed)
    │   ├── FalBrokenError    the connection broke after the request was sent
    │   │   └── FalIncompleteStream  the stream ended while fal still said `partial: true`
    │   └── FalTimeout        connect, first_event, idle or total timeout
    ├── FalRequestInvalid     a request that must not be sent as it is
    ├── FalResponseTooLarge   an answer, a stream event or a file over its size limit
    ├── KeysUnavailable       no fal key can take the request
    └── FalUnsafeURL          fal named a URL the proxy will not call (or cannot use)

What a client sees for each is decided outside `fal/`, in `translate/errors.py`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

# The longest wait any fal header can impose on us: `Retry-After: inf` must not bench a
# key forever, nor overflow the client's own Retry-After.
MAX_RETRY_AFTER = 3600.0
# fal's `detail` for a locked account: "User is locked. Reason: Exhausted balance. …", also
# "Reason: TOP_UP." and "Reason: Admin lock. …" (docs/fal-protocol.md §9.2).
ACCOUNT_LOCKED_PREFIX = "User is locked"


class FalError(Exception):
    """Any failure of a fal call."""

    @property
    def kind(self) -> str:
        """A short, bounded label for metrics and logs."""
        return type(self).__name__


class FalStatusError(FalError):
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
        ingress_page: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.request_id = request_id
        self.retryable = retryable
        self.retry_after = retry_after
        self.key_index = key_index
        self.ingress_page = ingress_page  # the body is nginx's error page

    @property
    def from_ingress(self) -> bool:
        """fal's ingress, not fal, answered: the work has certainly not started.

        fal_client's `_is_ingress_error` (fal-ai/fal `projects/fal_client/src/fal_client/
        client.py`): no `x-fal-request-id` header, and "nginx" in the body.
        """
        return self.request_id is None and self.ingress_page

    @property
    def account_locked(self) -> bool:
        """fal's 403 for a locked account (out of credit, or locked by fal): the key is
        valid, the account cannot pay (docs/fal-protocol.md §9.2)."""
        return self.status == 403 and self.message.startswith(ACCOUNT_LOCKED_PREFIX)

    @property
    def kind(self) -> str:
        if self.account_locked:
            return "account_locked"
        return self.error_type or f"http_{self.status}"


class FalEventError(FalError):
    """fal reported an error inside a stream event, after the stream began."""

    @property
    def kind(self) -> str:
        return "stream_error"


class FalTransportError(FalError):
    """The connection to fal failed."""


class FalConnectError(FalTransportError):
    """The connection to fal could not be made: nothing was sent."""


class FalTLSError(FalConnectError):
    """fal's certificate could not be verified: retrying will not help."""


class FalBrokenError(FalTransportError):
    """The connection to fal broke after the request was sent."""


class FalTimeout(FalTransportError):
    """One of the timeouts expired: connect, first_event, idle or total."""

    def __init__(self, which: str, seconds: float) -> None:
        super().__init__(f"fal did not answer in time ({which} timeout, {seconds:g} s)")
        self.which = which
        self.seconds = seconds


class FalRequestInvalid(FalError):
    """A request that must not be sent as it is (a line break in a key or URL)."""


class KeysUnavailable(FalError):
    """No fal key can take the request: all refused, rate-limited, or busy."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = min(max(retry_after, 0.0), MAX_RETRY_AFTER)


def parse_error_response(
    status: int, headers: Mapping[str, str], body: bytes, key_index: int | None = None
) -> FalStatusError:
    """Build a FalStatusError from a non-2xx fal answer."""
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
    if headers.get("x-fal-request-timeout-type", "").strip().lower() == "user":
        # Our own X-Fal-Request-Timeout expired: fal-js `isRetryableError` never retries it.
        retryable = "false"
    return FalStatusError(
        status,
        describe_detail(detail) or f"fal returned HTTP {status}",
        error_type=error_type if isinstance(error_type, str) else None,
        request_id=headers.get("x-fal-request-id"),
        retryable=None if retryable is None else retryable.strip().lower() == "true",
        retry_after=parse_retry_after(headers),
        key_index=key_index,
        # Only a flag is kept, not the page: errors live as long as the request.
        ingress_page=parsed is None and b"nginx" in body,
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
    """fal's `retry-after-ms` or `retry-after` (seconds), clamped to [0, MAX_RETRY_AFTER].

    A value that is not a finite number (`inf`, `nan`, an HTTP date) is ignored: a hostile or
    broken header must never bench a key forever.
    """
    ms = headers.get("retry-after-ms")
    raw = headers.get("retry-after")
    try:
        if ms is not None:
            seconds = float(ms) / 1000
        elif raw is not None:
            seconds = float(raw)
        else:
            return None
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class FalIncompleteStream(FalBrokenError):
    """fal's stream ended while its last event still said `partial: true`."""


class FalUnsafeURL(FalError):
    """fal's answer named a URL the proxy will not call: a queue URL that is neither fal's
    nor a configured one, or that downgrades to plain http (the key is not sent there); a
    media URL outside fal's media hosts or resolving to a private address
    (`fal/media_fetch.py`); or a URL that cannot be used at all. A failure of fal (502),
    never the client's."""


class FalResponseTooLarge(FalError):
    """An upstream answer read whole, one stream event or line, or a media file, is over its
    limit (MAX_UPSTREAM_BODY_BYTES, MAX_MEDIA_BYTES, MEDIA_BYTES_PER_REQUEST)."""

    @property
    def kind(self) -> str:
        return "upstream_too_large"


# -- fal's OpenAI route (OpenRouter behind fal, docs/fal-protocol.md §9) ---------------------


class UpstreamProviderError(FalError):
    """OpenRouter, behind fal's OpenAI route, answered with an error status and its own
    `{"error": {...}}` body (docs/fal-protocol.md §9.2). It speaks of the model or the provider
    (its credits, a moderation flag, a provider rate limit), not of our fal key: the key is
    neither benched nor swapped, and the call is not retried (the client's SDK may retry,
    honouring Retry-After: docs/openai-clients.md)."""

    def __init__(
        self, status: int, message: str, error_type: str | None, retry_after: float | None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.retry_after = retry_after

    @property
    def kind(self) -> str:
        return f"openrouter_{self.status}"


class UpstreamStreamError(FalError):
    """The upstream reported an error inside a stream or a 200 body: a chunk with a top-level
    `error`, or `finish_reason: "error"` (docs/fal-protocol.md §9.3, "Errors mid-stream")."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def kind(self) -> str:
        return "stream_error"
