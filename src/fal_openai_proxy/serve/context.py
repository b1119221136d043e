"""Typed per-request data, kept in the ASGI scope under one key."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from starlette.types import Scope

from ..openai.errors import PERMISSION, ProxyError

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
class Usage:
    """What one request used, filled by its service; the accounts store records it after the
    request ends. None means unknown (never a made-up zero)."""

    endpoint: str | None = None  # the registry's path template, e.g. /v1/chat/completions
    fal_app: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    images: int | None = None
    audio_seconds_in: float | None = None
    audio_seconds_out: float | None = None
    video_seconds: float | None = None
    cost: float | None = None  # USD
    cost_source: str | None = None  # "openrouter" | "billable_units" | "price_table"
    billable_units: float | None = None  # fal's x-fal-billable-units
    first_byte_at: float | None = None  # perf_counter() when the answer's first byte went out


@dataclass(slots=True)
class Client:
    """Who is calling. `id` is stable and never secret: "key-0" (the first API_KEY),
    "fal-<sha256 prefix>" (pass-through), "ip-<address>" (no key needed), "vk-<id>" (a
    virtual key), "console" (the console's playground, with the admin's session)."""

    kind: str = "open"  # "static" | "virtual" | "passthrough" | "open" | "console"
    id: str = "anonymous"
    name: str | None = None
    models: tuple[str, ...] | None = None  # the model globs allowed; None: all
    key_id: str | None = None  # a virtual key's id
    rpm: int | None = None  # a virtual key's own requests per minute
    # Set by the guard once the key is known (even if the request is then refused for its
    # budget or rate): only such requests are recorded as usage.
    identified: bool = False


@dataclass(slots=True)
class RequestContext:
    log: AccessLogFields
    usage: Usage = field(default_factory=Usage)
    client: Client = field(default_factory=Client)
    # Pass-through mode: the client's own fal key. Never logged, so not in `log`.
    fal_key: str | None = field(default=None, repr=False)
    # With LOG_PROMPTS only: the fal input and the answer, as logged (clipped); stored with the
    # request's usage row.
    prompt: object = field(default=None, repr=False)
    answer: object = field(default=None, repr=False)

    def check_model(self, model: str) -> None:
        """A 403 for a model outside the client's allowed globs (a virtual key's `models`)."""
        allowed = self.client.models
        if allowed is not None and not any(fnmatchcase(model, glob) for glob in allowed):
            raise ProxyError(
                403,
                f"This key may not use the model '{clip(model)}'.",
                type=PERMISSION,
                param="model",
                code="model_not_allowed",
            )


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
