"""The chat completion request, validated as OpenAI does (400 with the field named)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import ProxyError, invalid_request, unsupported

# Bounds on what a client controls (beyond MAX_BODY_BYTES and the settings' limits).
MAX_MODEL_ID = 256
MAX_STOP = 4
MAX_STOP_CHARS = 1000
MAX_TOOLS = 128
# Array items plus object members in one body. Checked on the raw bytes before parsing, so
# that no body builds more objects than this (a 20 MiB body can hold 1.3 M messages).
MAX_JSON_ITEMS = 50_000
TOKENS = 2**31 - 1  # the largest token count accepted (orjson cannot encode beyond 64 bits)
INT64 = 2**63


class _Open(BaseModel):
    """OpenAI accepts fields it does not document; so do we, and drop them unread (never
    converted to Python objects, whatever their size). NaN and infinities are refused."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImageURL(_Open):
    url: str
    detail: str | None = None


class ImagePart(_Open):
    type: Literal["image_url"]
    # fal's own examples send the URL as a bare string.
    image_url: ImageURL | str

    @property
    def url(self) -> str:
        return self.image_url if isinstance(self.image_url, str) else self.image_url.url


class RefusalPart(_Open):
    type: Literal["refusal"]
    refusal: str


class AudioPart(_Open):
    type: Literal["input_audio"]


class FilePart(_Open):
    type: Literal["file"]


ContentPart = Annotated[
    TextPart | ImagePart | RefusalPart | AudioPart | FilePart, Field(discriminator="type")
]
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(_Open):
    role: Role
    # Bounded by MAX_JSON_ITEMS here, by MAX_CONTENT_PARTS in `check_limits`.
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]


class ReasoningOptions(_Open):
    """OpenRouter's `reasoning: {...}` form: `effort` or `max_tokens`, "one of the following
    (not both)" (docs/fal-protocol.md §9.3)."""

    effort: str | None = None
    max_tokens: int | None = Field(None, ge=0, le=TOKENS)
    exclude: bool | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _one_budget(self) -> ReasoningOptions:
        if self.effort is not None and self.max_tokens is not None:
            raise PydanticCustomError(
                "reasoning_budget",
                "takes `effort` or `max_tokens`, not both (OpenRouter refuses the pair)",
            )
        return self


class ChatCompletionRequest(_Open):
    """Fields in the order of OpenAI's reference; unknown ones are accepted and ignored."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str = Field(min_length=1, max_length=MAX_MODEL_ID)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = Field(
        None, max_length=300
    )
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    max_tokens: int | None = Field(None, ge=1, le=TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=TOKENS)
    n: int | None = Field(None, ge=1, le=128)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    reasoning_effort: str | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = Field(None, ge=-INT64, lt=INT64)
    # The list's own max_length stops validation at the fifth item (one on the union would
    # validate every item first).
    stop: (
        Annotated[str, Field(max_length=MAX_STOP_CHARS)]
        | Annotated[
            list[Annotated[str, Field(max_length=MAX_STOP_CHARS)]], Field(max_length=MAX_STOP)
        ]
        | None
    ) = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    # Read by the tool checks (openai/tools.py); bounded in number, and in size by the
    # body's item count checked before parsing.
    tools: list[dict[str, Any]] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = Field(None, max_length=MAX_TOOLS)
    function_call: str | dict[str, Any] | None = None
    user: str | None = None
    # The seed's flag, or OpenRouter's object.
    reasoning: bool | ReasoningOptions | None = None

    @property
    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        items = [self.stop] if isinstance(self.stop, str) else self.stop
        return [s for s in items if s]

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def reasoning_requested(self) -> bool:
        if isinstance(self.reasoning, ReasoningOptions):
            return self.reasoning.enabled is not False and self.reasoning.effort != "none"
        if self.reasoning is not None:
            return self.reasoning
        return self.reasoning_effort not in (None, "none")

    @property
    def reasoning_hidden(self) -> bool:
        return isinstance(self.reasoning, ReasoningOptions) and bool(self.reasoning.exclude)


def parse_chat_request(body: bytes, max_content_parts: int = 1000) -> ChatCompletionRequest:
    """Validate a request body for the prompt route; every failure is a 400 naming the field."""
    request = parse_chat_body(body, max_content_parts)
    check_supported(request)
    return request


def check_json_size(body: bytes, limit: int = MAX_JSON_ITEMS) -> None:
    """Refuse a body with more than `limit` array items and object members, before parsing.

    Every item after a container's first follows a comma, so a body with few commas is small
    (one C-speed count). Otherwise commas inside strings are set aside: escapes removed, the
    body split at its quotes (a bounded split, as each string is itself an item), and only
    the commas outside strings counted. Every step is a linear pass in C: tens of ms for 20 MiB.
    """
    if body.count(b",") <= limit:
        return
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in body else body
    if plain.count(b'"') // 2 <= limit:
        outside = plain.split(b'"')[::2]
        if sum(part.count(b",") for part in outside) <= limit:
            return
    raise invalid_request(
        f"The request has too many JSON values: at most {limit} array items and object "
        "members are allowed.",
        code="request_too_complex",
    )


def check_limits(request: ChatCompletionRequest, max_content_parts: int) -> None:
    for index, message in enumerate(request.messages):
        if isinstance(message.content, list) and len(message.content) > max_content_parts:
            param = f"messages[{index}].content"
            raise invalid_request(
                f"Invalid '{param}': at most {max_content_parts} content parts are allowed.",
                param,
                "array_above_max_length",
            )


def check_supported(request: ChatCompletionRequest) -> None:
    """Refuse what the prompt route cannot honour, rather than answer wrongly."""
    if request.n is not None and request.n > 1:
        raise unsupported("n", "must be 1: fal's chat apps return a single answer.")
    if request.tools:
        raise unsupported("tools", "is not supported: fal's prompt apps cannot call tools.")
    if request.functions:
        raise unsupported("functions", "is not supported: fal's prompt apps cannot call tools.")
    if request.logprobs:
        raise unsupported("logprobs", "is not supported: fal does not return log probabilities.")
    if request.response_format and request.response_format.type != "text":
        raise unsupported(
            "response_format",
            f"of type '{request.response_format.type}' is not supported with this model: "
            "fal's prompt apps cannot enforce a JSON format.",
        )
    if request.stream_options is not None and not request.stream:
        raise invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    for index, message in enumerate(request.messages):
        if isinstance(message.content, list):
            for part_index, part in enumerate(message.content):
                if isinstance(part, AudioPart | FilePart):
                    raise unsupported(
                        f"messages[{index}].content[{part_index}]",
                        f"of type '{part.type}' is not supported: fal's chat apps take text "
                        "and images only.",
                    )


def _to_proxy_error(exc: ValidationError) -> ProxyError:
    errors = exc.errors(include_url=False)
    # Of a union's alternatives, the deepest error is the one that explains the mistake; at
    # equal depth, a broken constraint explains more than a wrong type.
    first = max(errors, key=lambda error: (len(error["loc"]), not error["type"].endswith("_type")))
    kind = first["type"]
    if kind == "json_invalid" or (kind == "model_type" and not first["loc"]):
        return invalid_request(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        )
    param = _param_name(first["loc"])
    if kind == "missing":
        return invalid_request(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    if kind == "too_short" and param == "messages":
        return invalid_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param,
            "empty_array",
        )
    if kind == "union_tag_not_found":  # a content part without `type`
        param += ".type"
        return invalid_request(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    if kind == "union_tag_invalid":  # a content part of an unknown `type`
        param += ".type"
    if kind in ("literal_error", "union_tag_invalid"):
        return invalid_request(
            f"Invalid value for '{param}': {first['msg']}.", param, "invalid_value"
        )
    if kind == "too_long":
        code = "array_above_max_length"
    elif kind == "string_too_long":
        code = "string_above_max_length"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        code = "invalid_type"
    else:
        code = "invalid_value"
    return invalid_request(f"Invalid '{param}': {first['msg']}.", param, code)


def _param_name(loc: tuple[int | str, ...]) -> str:
    """('messages', 0, 'content') -> 'messages[0].content', as OpenAI names it."""
    name = ""
    previous: int | str = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part in _UNION_LABELS or "[" in part or part.startswith("constrained-"):
            continue  # pydantic's union branch labels are not field names
        elif isinstance(previous, int) and part in _PART_TAGS:
            pass  # the discriminator tag of a content part
        else:
            name += f".{part}" if name else part
        previous = part
    return name


_UNION_LABELS = {"str", "bool", "int", "ReasoningOptions", "ImageURL", "dict[str,any]"}
_PART_TAGS = {"text", "image_url", "refusal", "input_audio", "file"}


def parse_chat_body(body: bytes, max_content_parts: int = 1000) -> ChatCompletionRequest:
    """Validate a request body without the prompt route's refusals (`check_supported`):
    which route serves the request is decided after this. Sizes are bounded before parsing."""
    check_json_size(body)
    try:
        request = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _to_proxy_error(exc) from None
    check_limits(request, max_content_parts)
    return request
