"""Typed per-request data, kept in the ASGI scope under one key."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import Scope

from .openai.errors import PERMISSION, ProxyError
from .store.accounts import ModelGlobs

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
    """What one request used, filled by the services; the accounts store writes it as one
    usage row after the request ends. Unknown stays None (never a made-up 0)."""

    endpoint: str | None = None  # e.g. "/v1/chat/completions"; the path when left unset
    fal_app: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    images: int | None = None
    audio_seconds_in: float | None = None
    audio_seconds_out: float | None = None
    video_seconds: float | None = None
    cost: float | None = None  # USD; None: unknown
    cost_source: str | None = None  # "openrouter" | "billable_units" | "price_table"
    billable_units: float | None = None
    first_byte_at: float | None = None  # time.perf_counter() when the answer's head went out


@dataclass(slots=True, frozen=True)
class Client:
    """Who is calling. `id` is stable and never secret: "key-0" (the first API_KEY),
    "vk-<id>" (a virtual key), "fal-<sha256 prefix>" (pass-through), "ip-<address>"."""

    kind: str = "open"  # "static" | "virtual" | "passthrough" | "open"
    id: str = "anonymous"
    name: str | None = None
    models: ModelGlobs | None = None  # None: every model
    key_id: str | None = None  # a virtual key's id
    rpm: int | None = None  # a virtual key's own requests-per-minute limit


# Until the guard has identified the client (requests it refuses stay so, and are not
# recorded as usage).
UNIDENTIFIED = Client()


@dataclass(slots=True)
class RequestContext:
    log: AccessLogFields
    # Pass-through mode: the client's own fal key. Never logged, so not in `log`.
    fal_key: str | None = field(default=None, repr=False)
    usage: Usage = field(default_factory=Usage)
    client: Client = UNIDENTIFIED
    # With LOG_PROMPTS only: the fal input and the answer, as logged (clipped).
    prompt: object = field(default=None, repr=False)
    answer: object = field(default=None, repr=False)

    def check_model(self, model: str) -> None:
        """403 `model_not_allowed` for a model outside the virtual key's `models`."""
        globs = self.client.models
        if globs is not None and not globs.allows(model):
            raise model_not_allowed(model)


def model_not_allowed(model: str) -> ProxyError:
    return ProxyError(
        403,
        f"This API key may not use the model `{clip(model)}`.",
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
