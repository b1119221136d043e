"""fal failures -> the OpenAI error a client sees (the error table in docs/errors.md).

The one place that decides statuses and codes for upstream failures: routes, services and
the stream loop all come here.
"""

from __future__ import annotations

from ..fal.errors import (
    FalBrokenError,
    FalConnectError,
    FalError,
    FalEventError,
    FalIncompleteStream,
    FalRequestInvalid,
    FalResponseTooLarge,
    FalStatusError,
    FalTimeout,
    FalUnsafeURL,
    KeysUnavailable,
    UpstreamProviderError,
    UpstreamStreamError,
)
from ..openai.errors import (
    AUTHENTICATION,
    INVALID_REQUEST,
    SERVER_ERROR,
    TIMEOUT,
    UPSTREAM_ERROR,
    ProxyError,
    insufficient_quota,
    rate_limited,
)


def to_openai_error(exc: FalError, *, pass_through: bool) -> ProxyError:
    """The client's view of an upstream failure."""
    if isinstance(exc, FalStatusError):
        return _status_error(exc, pass_through)
    if isinstance(exc, UpstreamProviderError):
        return _provider_error(exc, pass_through)
    if isinstance(exc, UpstreamStreamError):
        return ProxyError(
            502, f"The model provider failed: {exc.message}", type=UPSTREAM_ERROR,
            code="upstream_error",
        )  # fmt: skip
    if isinstance(exc, FalEventError):
        return ProxyError(
            502, f"fal reported an error: {exc}", type=UPSTREAM_ERROR, code="upstream_error"
        )
    if isinstance(exc, FalTimeout):
        return ProxyError(504, str(exc), type=TIMEOUT, code="upstream_timeout")
    if isinstance(exc, FalConnectError):
        return ProxyError(
            502, "Could not connect to fal.", type=UPSTREAM_ERROR, code="upstream_unreachable"
        )
    if isinstance(exc, FalIncompleteStream):
        return ProxyError(
            502, "fal's stream ended before the answer was complete.",
            type=UPSTREAM_ERROR, code="upstream_incomplete",
        )  # fmt: skip
    if isinstance(exc, FalBrokenError):
        return ProxyError(
            502, "The connection to fal broke.", type=UPSTREAM_ERROR, code="upstream_disconnected"
        )
    if isinstance(exc, KeysUnavailable):
        return _keys_error(exc)
    if isinstance(exc, FalUnsafeURL):
        return ProxyError(
            502, f"fal named a URL the proxy will not call: {exc}.",
            type=UPSTREAM_ERROR, code="upstream_bad_url",
        )  # fmt: skip
    if isinstance(exc, FalResponseTooLarge):
        return ProxyError(
            502, f"fal's answer is too large: {exc}.", type=UPSTREAM_ERROR, code=exc.kind
        )
    if isinstance(exc, FalRequestInvalid):
        return ProxyError(400, f"The request cannot be sent to fal: {exc}.", type=INVALID_REQUEST)
    return ProxyError(502, "fal request failed.", type=UPSTREAM_ERROR, code="upstream_error")


def _status_error(exc: FalStatusError, pass_through: bool) -> ProxyError:
    status, message = exc.status, exc.message
    if status == 422:
        return ProxyError(400, f"fal rejected the input: {message}", type=INVALID_REQUEST)
    if exc.account_locked:
        # Out of credit, or locked by fal (docs/fal-protocol.md §9.2): OpenAI's answer for an
        # account that cannot pay, on the server's key and on a client's own key alike.
        whose = "Your fal account" if pass_through else "The fal account of this server"
        return insufficient_quota(f"{whose} is out of credit or locked: {message}")
    if status in (401, 403):
        if pass_through:
            return ProxyError(
                401, f"fal refused the key: {message}", type=AUTHENTICATION, code="invalid_api_key"
            )
        return ProxyError(
            502, "fal refused the server's key.", type=UPSTREAM_ERROR, code="upstream_auth"
        )
    if status == 429:
        return rate_limited(f"fal is rate limiting: {message}", exc.retry_after or 1)
    if status == 503:
        return ProxyError(503, f"fal is unavailable: {message}", type=SERVER_ERROR)
    if status == 504:
        return ProxyError(504, f"fal timed out: {message}", type=TIMEOUT, code="upstream_timeout")
    if 400 <= status < 500:
        return ProxyError(400, f"fal rejected the request: {message}", type=INVALID_REQUEST)
    return ProxyError(502, f"fal failed: {message}", type=UPSTREAM_ERROR, code="upstream_error")


def _keys_error(exc: KeysUnavailable) -> ProxyError:
    if exc.reason == "auth":
        return ProxyError(
            502, "fal refused every key of this server.", type=UPSTREAM_ERROR, code="upstream_auth"
        )
    message = (
        "All fal keys are rate limited; retry later."
        if exc.reason == "rate_limited"
        else "All fal keys are busy; retry later."
    )
    return rate_limited(message, exc.retry_after)


def _provider_error(exc: UpstreamProviderError, pass_through: bool) -> ProxyError:
    """OpenRouter's own error statuses behind fal's OpenAI route (docs/fal-protocol.md §9.2):
    the prompt route's table, except for what is not about our fal key."""
    if exc.status == 402:
        return ProxyError(
            402, f"The model provider needs more credit: {exc.message}", type=UPSTREAM_ERROR,
            code="insufficient_credits",
        )  # fmt: skip
    if exc.status == 403:
        return ProxyError(
            403, f"The model provider refused the request: {exc.message}",
            type="permission_error", code=exc.error_type or "forbidden",
        )  # fmt: skip
    if exc.status == 401:
        # fal's key was accepted; the credentials fal holds for the provider were not.
        return ProxyError(
            502, f"The model provider refused fal's credentials: {exc.message}",
            type=UPSTREAM_ERROR, code="upstream_auth",
        )  # fmt: skip
    status_error = FalStatusError(exc.status, exc.message, retry_after=exc.retry_after)
    return _status_error(status_error, pass_through)
