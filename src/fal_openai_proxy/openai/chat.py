"""The chat completion request, validated as OpenAI does (400 with the field named)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from .base import OpenAIModel, parse_json
from .errors import invalid_request, unsupported

# Bounds on what a client controls (beyond MAX_BODY_BYTES and the settings' limits).
MAX_MODEL_ID = 256
MAX_STOP = 4
MAX_STOP_CHARS = 1000
MAX_TOOLS = 128
TOKENS = 2**31 - 1  # the largest token count accepted (orjson cannot encode beyond 64 bits)
INT64 = 2**63


class TextPart(OpenAIModel):
    type: Literal["text"]
    text: str


class ImageURL(OpenAIModel):
    url: str
    detail: str | None = None


class ImagePart(OpenAIModel):
    type: Literal["image_url"]
    # fal's own examples send the URL as a bare string.
    image_url: ImageURL | str

    @property
    def url(self) -> str:
        return self.image_url if isinstance(self.image_url, str) else self.image_url.url


class RefusalPart(OpenAIModel):
    type: Literal["refusal"]
    refusal: str


class AudioPart(OpenAIModel):
    type: Literal["input_audio"]


class FilePart(OpenAIModel):
    type: Literal["file"]


ContentPart = Annotated[
    TextPart | ImagePart | RefusalPart | AudioPart | FilePart, Field(discriminator="type")
]
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(OpenAIModel):
    role: Role
    # Bounded by MAX_JSON_ITEMS here, by MAX_CONTENT_PARTS in `check_limits`.
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # an assistant's calls (openai/tools.py)


class StreamOptions(OpenAIModel):
    include_usage: bool | None = None


class ResponseFormat(OpenAIModel):
    type: Literal["text", "json_object", "json_schema"]


class ReasoningOptions(OpenAIModel):
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


class ChatCompletionRequest(OpenAIModel):
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


def parse_chat_body(body: bytes, max_content_parts: int = 1000) -> ChatCompletionRequest:
    """Validate a request body without the prompt route's refusals (`check_supported`):
    which route serves the request is decided after this. Sizes are bounded before parsing."""
    request = parse_json(ChatCompletionRequest, body)
    check_limits(request, max_content_parts)
    return request
