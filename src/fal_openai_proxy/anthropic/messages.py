"""The bodies of POST /v1/messages and /v1/messages/count_tokens, validated as Anthropic
documents them (the anthropic SDK's `types/message_create_params.py` and the block params
it names). Unknown fields are accepted and ignored (beta features, `cache_control`,
`context_management`, ...): a client's beta flags never cause an error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..openai.base import check_json_size
from ..openai.chat import MAX_MODEL_ID, MAX_STOP, MAX_STOP_CHARS, MAX_TOOLS, TOKENS
from ..openai.errors import ProxyError
from .errors import AnthropicError, from_proxy_error, invalid_request

MIN_THINKING_BUDGET = 1024  # `ThinkingConfigEnabledParam.budget_tokens`: "Must be ≥1024"
MAX_USER_ID = 256
# Anthropic-defined tools (server tools and Anthropic-schema client tools): `type` values
# other than "custom" (`types/tool_union_param.py`). fal's models cannot run them.
CUSTOM_TOOL_TYPES = (None, "custom")


class _Open(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class TextBlock(_Open):
    type: Literal["text"]
    text: str


class Base64Source(_Open):
    type: Literal["base64"]
    media_type: str
    data: str


class URLSource(_Open):
    type: Literal["url"]
    url: str


class FileSource(_Open):
    """A file of Anthropic's Files API: never served here (refused with a 400)."""

    type: Literal["file"]
    file_id: str


class PlainTextSource(_Open):
    type: Literal["text"]
    media_type: str = "text/plain"
    data: str


ImageSource = Annotated[Base64Source | URLSource | FileSource, Field(discriminator="type")]


class ImageBlock(_Open):
    type: Literal["image"]
    source: ImageSource


class ContentSource(_Open):
    type: Literal["content"]
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]]


DocumentSource = Annotated[
    Base64Source | URLSource | PlainTextSource | ContentSource | FileSource,
    Field(discriminator="type"),
]


class DocumentBlock(_Open):
    type: Literal["document"]
    source: DocumentSource
    title: str | None = None
    context: str | None = None


class ToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


ToolResultPart = Annotated[TextBlock | ImageBlock | DocumentBlock, Field(discriminator="type")]


class ToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ToolResultPart] | None = None
    is_error: bool | None = None


class ThinkingBlock(_Open):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(_Open):
    type: Literal["redacted_thinking"]
    data: str


ContentBlock = Annotated[
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class Message(_Open):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class Metadata(_Open):
    user_id: str | None = Field(None, max_length=MAX_USER_ID)


class ToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Thinking(_Open):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(None, ge=MIN_THINKING_BUDGET, le=TOKENS)


class CountTokensRequest(_Open):
    """`messages.count_tokens`: the create body without the sampling fields."""

    model: str = Field(min_length=1, max_length=MAX_MODEL_ID)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    # Read by `check_tools`: custom tools, or Anthropic-defined ones refused by name.
    tools: list[dict[str, Any]] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None


class MessagesRequest(CountTokensRequest):
    """Fields in the order of Anthropic's reference."""

    max_tokens: int = Field(ge=1, le=TOKENS)
    metadata: Metadata | None = None
    stop_sequences: list[Annotated[str, Field(max_length=MAX_STOP_CHARS)]] | None = Field(
        None, max_length=MAX_STOP
    )
    stream: bool | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    top_p: float | None = Field(None, ge=0, le=1)

    @property
    def stops(self) -> list[str]:
        return [s for s in self.stop_sequences or () if s]


_Request = TypeVar("_Request", bound=CountTokensRequest)


def parse_messages_body(body: bytes) -> MessagesRequest:
    request = _parse(MessagesRequest, body)
    thinking = request.thinking
    budget = thinking.budget_tokens if thinking is not None else None
    if budget is not None and budget >= request.max_tokens:
        raise invalid_request(
            f"thinking.budget_tokens: must be less than max_tokens ({budget} >= "
            f"{request.max_tokens})."
        )
    return request


def parse_count_tokens_body(body: bytes) -> CountTokensRequest:
    return _parse(CountTokensRequest, body)


def _parse(model: type[_Request], body: bytes) -> _Request:
    try:
        check_json_size(body)
    except ProxyError as exc:
        raise from_proxy_error(exc) from None
    try:
        request = model.model_validate_json(body)
    except ValidationError as exc:
        raise _to_error(exc) from None
    check_tools(request)
    return request


def check_tools(request: CountTokensRequest) -> None:
    """Custom tools need a name and an `input_schema`; an Anthropic-defined tool (web search,
    code execution, computer use, bash, text editor, ...) is refused by name."""
    names: set[str] = set()
    for index, tool in enumerate(request.tools or ()):
        kind = tool.get("type")
        name = tool.get("name")
        if kind not in CUSTOM_TOOL_TYPES:
            label = name if isinstance(name, str) else kind
            raise invalid_request(
                f"tools.{index}: the tool '{label}' (type '{kind}') is one of Anthropic's own "
                "tools, which the models served here cannot run; define it as a custom tool "
                "with an input_schema instead."
            )
        if not isinstance(name, str) or not name:
            raise invalid_request(f"tools.{index}.name: Field required")
        if not isinstance(tool.get("input_schema"), dict):
            raise invalid_request(f"tools.{index}.input_schema: Field required")
        names.add(name)
    choice = request.tool_choice
    if choice is not None and choice.type == "tool":
        if not choice.name:
            raise invalid_request("tool_choice.name: Field required")
        if choice.name not in names:
            raise invalid_request(f"tool_choice.name: no tool named '{choice.name}' is in tools.")
    if choice is not None and choice.type == "any" and not names:
        raise invalid_request("tool_choice: 'any' needs at least one tool in tools.")


def _to_error(exc: ValidationError) -> AnthropicError:
    errors = exc.errors(include_url=False)
    # The deepest error explains a union's failure best (as for chat, openai/requests.py).
    first = max(errors, key=lambda e: (len(e["loc"]), not e["type"].endswith("_type")))
    if first["type"] == "json_invalid" or (first["type"] == "model_type" and not first["loc"]):
        return invalid_request("The request body is not valid JSON: it must be a JSON object.")
    location = _location(first["loc"])
    return invalid_request(f"{location}: {first['msg']}" if location else first["msg"])


_BRANCH_LABELS = {"str", "list[...]", "int", "bool", "dict[str,any]"}


def _location(loc: tuple[int | str, ...]) -> str:
    """('messages', 0, 'content', 'list[...]', 1, 'text', 'text') -> 'messages.0.content.1.text',
    as Anthropic names fields (dotted, indexes included); union labels and tags are skipped."""
    parts: list[str] = []
    for position, part in enumerate(loc):
        text = str(part)
        if text in _BRANCH_LABELS or "[" in text or text.startswith("constrained-"):
            continue
        if position >= 2 and text in _BLOCK_TAGS and _is_tag(loc, position):
            continue
        parts.append(text)
    return ".".join(parts)


def _is_tag(loc: tuple[int | str, ...], position: int) -> bool:
    """A discriminator tag follows an item of a list of blocks, or a block's `source`."""
    before, previous = loc[position - 2], loc[position - 1]
    return previous == "source" or (isinstance(previous, int) and "[" in str(before))


_BLOCK_TAGS = {
    "text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
    "base64", "url", "file", "content",
}  # fmt: skip
