"""OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import math
from collections.abc import Mapping

import orjson

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
PERMISSION = "permission_error"
RATE_LIMIT = "rate_limit_error"
SERVER_ERROR = "server_error"
UPSTREAM_ERROR = "upstream_error"
TIMEOUT = "timeout_error"
INSUFFICIENT_QUOTA = "insufficient_quota"


class ProxyError(Exception):
    """An error the client sees, with its HTTP status and OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def json(self) -> bytes:
        return orjson.dumps(self.body())


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> ProxyError:
    return ProxyError(400, message, param=param, code=code)


def unsupported(param: str, why: str) -> ProxyError:
    return ProxyError(
        400, f"Unsupported parameter: '{param}' {why}", param=param, code="unsupported_parameter"
    )


def model_not_found(model: str) -> ProxyError:
    return ProxyError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def rate_limited(message: str, retry_after: float) -> ProxyError:
    # Whole seconds in 1..3600, whatever the caller computed (never `round(inf)`).
    seconds = str(round(min(max(retry_after, 1.0), 3600.0)) if math.isfinite(retry_after) else 1)
    return ProxyError(
        429, message, type=RATE_LIMIT, code="rate_limit_exceeded", headers={"Retry-After": seconds}
    )


def insufficient_quota(message: str) -> ProxyError:
    """OpenAI's answer for an account out of credit: 429 `insufficient_quota`, which clients
    must not retry (`x-should-retry: false` stops the openai SDKs' own retries)."""
    return ProxyError(
        429,
        message,
        type=INSUFFICIENT_QUOTA,
        code=INSUFFICIENT_QUOTA,
        headers={"x-should-retry": "false"},
    )


def unavailable(message: str) -> ProxyError:
    return ProxyError(503, message, type=SERVER_ERROR, code="service_unavailable")
