"""Typed per-request data, kept in the ASGI scope under one key."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import Scope

_SCOPE_KEY = "fal_openai_proxy.context"
# Any one field of the access log carries at most this many characters.
MAX_LOG_FIELD = 200
# With LOG_PROMPTS, each prompt string (or image data URI) logged carries at most this many.
MAX_PROMPT_LOG = 64 * 1024


@dataclass(slots=True)
class AccessLogFields:
    """What the access-log line and the metrics say about one request (no secrets here)."""

    request_id: str
    model: str | None = None
    model_label: str = ""  # a bounded metrics label: catalog ids, else "other"
    stream: bool | None = None
    route: str | None = None  # the upstream route taken, e.g. "prompt"
    fal_request_id: str | None = None
    error_type: str | None = None


@dataclass(slots=True)
class RequestContext:
    log: AccessLogFields
    # Who is calling, stable and not secret: "key-0", "fal-<sha256 prefix>", "ip-…".
    client_id: str = "anonymous"
    # Pass-through mode: the client's own fal key. Never logged, so not in `log`.
    fal_key: str | None = field(default=None, repr=False)


def new_context(scope: Scope, request_id: str) -> RequestContext:
    context = RequestContext(AccessLogFields(request_id=request_id))
    scope[_SCOPE_KEY] = context
    return context


def request_context(scope: Scope) -> RequestContext:
    """The request's context (a fresh one if no middleware made it, as in unit tests)."""
    context: RequestContext | None = scope.get(_SCOPE_KEY)
    return context if context is not None else new_context(scope, "-")


def clip(value: str | None, limit: int = MAX_LOG_FIELD) -> str | None:
    """A client-controlled string, cut to what a log line may carry."""
    if value is None or len(value) <= limit:
        return value
    return value[:limit] + f"…(+{len(value) - limit})"


def clip_all(value: object, limit: int = MAX_PROMPT_LOG) -> object:
    """`value` with every string in it clipped (for logging a fal input or an answer)."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, dict):
        return {k: clip_all(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [clip_all(v, limit) for v in value]
    return value
