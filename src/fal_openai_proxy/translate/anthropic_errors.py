"""fal failures -> the Anthropic error a client of /v1/messages sees: the chat error table
(translate/errors.py, docs/errors.md) in Anthropic's shape, plus Anthropic's own 529
`overloaded_error` when the model provider says it is overloaded."""

from __future__ import annotations

from ..anthropic.errors import OVERLOADED, OVERLOADED_STATUS, AnthropicError, from_proxy_error
from ..fal.errors import FalError, UpstreamProviderError, UpstreamStreamError
from .errors import to_openai_error

# OpenRouter's `metadata.error_type` for an overloaded provider (docs/fal-protocol.md §9.2).
OVERLOADED_TYPES = frozenset({"provider_overloaded", "overloaded", "overloaded_error"})


def to_anthropic_error(exc: FalError, *, pass_through: bool) -> AnthropicError:
    if _overloaded(exc):
        message = getattr(exc, "message", "") or "The model provider is overloaded."
        return AnthropicError(
            OVERLOADED_STATUS, f"The model provider is overloaded: {message}", OVERLOADED,
            code="upstream_overloaded",
        )  # fmt: skip
    return from_proxy_error(to_openai_error(exc, pass_through=pass_through))


def _overloaded(exc: FalError) -> bool:
    if isinstance(exc, UpstreamProviderError):
        return exc.status == OVERLOADED_STATUS or exc.error_type in OVERLOADED_TYPES
    if isinstance(exc, UpstreamStreamError):
        return exc.code in OVERLOADED_TYPES
    return False
