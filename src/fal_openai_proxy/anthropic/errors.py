"""Anthropic-shaped errors: `{"type": "error", "error": {"type", "message"}}`.

The error types are those of the anthropic SDK's `types/shared/error_type.py`; the status
decides the SDK's exception class (`_error_classes.py`, `ERROR_CLASSES`), so statuses stay
those of the chat error table (docs/errors.md) and only the body takes Anthropic's shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from ..openai.errors import ProxyError

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
BILLING = "billing_error"
PERMISSION = "permission_error"
NOT_FOUND = "not_found_error"
RATE_LIMIT = "rate_limit_error"
TIMEOUT = "timeout_error"
API_ERROR = "api_error"
OVERLOADED = "overloaded_error"
OVERLOADED_STATUS = 529  # Anthropic's own status for `overloaded_error`

_TYPE_BY_STATUS = {
    401: AUTHENTICATION,
    402: BILLING,
    403: PERMISSION,
    404: NOT_FOUND,
    408: TIMEOUT,
    429: RATE_LIMIT,
    503: OVERLOADED,
    504: TIMEOUT,
    OVERLOADED_STATUS: OVERLOADED,
}


class AnthropicError(Exception):
    """An error the client sees on an Anthropic endpoint, with its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or error_type(status)
        self.headers = dict(headers or {})
        self.code = code  # for the access log only (our OpenAI-side code, if any)

    def body(self) -> dict[str, object]:
        return {"type": "error", "error": {"type": self.type, "message": self.message}}

    def json(self) -> bytes:
        return orjson.dumps(self.body())


def wants_anthropic_errors(scope: Mapping[str, object]) -> bool:
    """Anthropic's error shape for its endpoints, and for any request of an Anthropic client
    (which sends `anthropic-version`, e.g. GET /v1/models)."""
    path = scope.get("path")
    if isinstance(path, str) and path.startswith("/v1/messages"):
        return True
    headers = scope.get("headers")
    return isinstance(headers, list) and any(k == b"anthropic-version" for k, _ in headers)


def error_type(status: int) -> str:
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    return API_ERROR if status >= 500 else INVALID_REQUEST


def invalid_request(message: str) -> AnthropicError:
    return AnthropicError(400, message, INVALID_REQUEST)


def from_proxy_error(exc: ProxyError) -> AnthropicError:
    """The same failure, in Anthropic's shape: the status is kept, the type follows it."""
    message = exc.message
    if exc.param and exc.status == 400 and exc.param not in message:
        message = f"{exc.param}: {message}"
    return AnthropicError(exc.status, message, headers=exc.headers, code=exc.code or exc.type)


def error_event(error: AnthropicError) -> bytes:
    """An error after the stream began: Anthropic's `error` event (the SDK raises on it)."""
    return b"event: error\ndata: " + error.json() + b"\n\n"
