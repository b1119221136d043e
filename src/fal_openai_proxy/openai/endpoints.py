"""Request checks for POST /v1/responses and POST /v1/embeddings.

Both bodies go to fal's OpenAI route nearly as they are, so only what we must refuse, or
what the upstream would answer less clearly, is checked here; the rest is the upstream's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .errors import invalid_request, unsupported
from .tools import check_tool_choice

# What needs server-side state, which OpenRouter's Responses API does not keep
# (docs/fal-protocol.md §9.5): refused with a 400 naming the param.
_STATEFUL = (
    ("previous_response_id", "OpenRouter's Responses API keeps no responses: send the whole "
     "conversation in 'input' instead."),
    ("conversation", "OpenRouter's Responses API keeps no conversations: send the whole "
     "conversation in 'input' instead."),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """A body for fal's OpenAI route, checked: sent on as it is."""

    body: dict[str, Any]
    model: str
    stream: bool


# -- the bodies, described for /openapi.json -------------------------------------------------
# The parsers below check the raw JSON; these models only describe what they accept (the
# rest goes to the upstream unchanged). tests/e2e/test_openapi.py holds them to the server.


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # the upstream's fields pass through


class ResponsesRequest(_Open):
    """POST /v1/responses: stateless, so whatever needs a stored response is refused."""

    model: str = Field(min_length=1)
    input: str | list[Any] = Field(description="The whole conversation (nothing is stored).")
    stream: bool | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = Field(
        None, description="A `function`/`custom` tool needs a `name`."
    )
    tool_choice: str | dict[str, Any] | None = Field(
        None, description="`none`, `auto`, `required` or a tool named in `tools`."
    )
    store: Literal[False] | None = None
    background: Literal[False] | None = None
    previous_response_id: None = Field(None, description="Refused: nothing is stored.")
    conversation: None = Field(None, description="Refused: nothing is stored.")


_Text = Annotated[str, Field(min_length=1)]


class EmbeddingsRequest(_Open):
    """POST /v1/embeddings: fal's vectors come back unchanged."""

    model: str = Field(min_length=1)
    input: _Text | Annotated[list[_Text], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    stream: Literal[False] | None = None


def parse_responses_request(raw: bytes) -> RouteRequest:
    body = _object(raw)
    model = _model(body)
    for param, why in _STATEFUL:
        if body.get(param) is not None:
            raise unsupported(param, f"is not supported: {why}")
    if body.get("background") is True:
        raise unsupported(
            "background", "is not supported: responses are not stored, so they cannot be polled."
        )
    if body.get("store") is True:
        raise unsupported(
            "store", "must be false or absent: OpenRouter's Responses API stores nothing."
        )
    if "input" not in body or body["input"] is None:
        _fail("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if not isinstance(body["input"], str | list):
        _fail("Invalid type for 'input': expected a string or an array.", "input", "invalid_type")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        _fail("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    names = _response_tool_names(body.get("tools"))
    check_tool_choice(body.get("tool_choice"), names, nested=False)
    return RouteRequest(body, model, bool(stream))


def _response_tool_names(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        _fail("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            _fail(f"Invalid type for 'tools[{index}]'.", f"tools[{index}]", "invalid_type")
        if tool.get("type") in ("function", "custom"):
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                param = f"tools[{index}].name"
                _fail(
                    f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
                )
            names.add(name)
    return names


# Token ids are one tokenizer's numbers; the proxy takes text, whichever model embeds it.
TOKEN_IDS = (
    "expected a string; token-id arrays are not supported, send the text itself. LangChain's "
    "OpenAIEmbeddings sends token ids by default: create it with "
    "check_embedding_ctx_length=False."
)


def parse_embeddings_request(raw: bytes) -> RouteRequest:
    body = _object(raw)
    model = _model(body)
    value = body.get("input")
    if value is None:
        _fail("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if isinstance(value, str):
        if not value:
            _fail("Invalid 'input': the string is empty.", "input", "invalid_value")
    elif isinstance(value, list):
        if not value:
            _fail("Invalid 'input': empty array. Expected at least one string.", "input",
                  "empty_array")  # fmt: skip
        for index, item in enumerate(value):
            if isinstance(item, int | list) and not isinstance(item, bool):
                _fail(f"Invalid type for 'input[{index}]': {TOKEN_IDS}", f"input[{index}]",
                      "invalid_type")  # fmt: skip
            if not isinstance(item, str):
                _fail(f"Invalid type for 'input[{index}]': expected a string.", f"input[{index}]",
                      "invalid_type")  # fmt: skip
            if not item:
                _fail(f"Invalid 'input[{index}]': the string is empty.", f"input[{index}]",
                      "invalid_value")  # fmt: skip
    else:
        _fail("Invalid type for 'input': expected a string or an array of strings.", "input",
              "invalid_type")  # fmt: skip
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        _fail("Invalid value for 'encoding_format': expected 'float' or 'base64'.",
              "encoding_format", "invalid_value")  # fmt: skip
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        _fail("Invalid 'dimensions': expected an integer of at least 1.", "dimensions",
              "invalid_value")  # fmt: skip
    if body.get("stream"):
        raise unsupported("stream", "is not supported for embeddings.")
    return RouteRequest(body, model, False)


def _object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        _fail(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            None,
            "invalid_json",
        )
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        _fail("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        _fail("Invalid 'model': expected a non-empty string.", "model", "invalid_type")
    return model


def _fail(message: str, param: str | None, code: str) -> NoReturn:
    raise invalid_request(message, param, code)
