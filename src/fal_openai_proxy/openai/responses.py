"""POST /v1/responses: the body goes to fal's OpenAI route nearly as it is, so only what we
must refuse, or what the upstream would answer less clearly, is checked here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from .base import CheckedBody, OpenAIModel, fail, json_object, model_id
from .errors import unsupported
from .tools import check_tool_choice

# What needs server-side state, which OpenRouter's Responses API does not keep
# (docs/fal-protocol.md §9.5): refused with a 400 naming the param.
_STATEFUL = (
    ("previous_response_id", "OpenRouter's Responses API keeps no responses: send the whole "
     "conversation in 'input' instead."),
    ("conversation", "OpenRouter's Responses API keeps no conversations: send the whole "
     "conversation in 'input' instead."),
)  # fmt: skip


# The parser checks the raw JSON; this model only describes what it accepts (the rest goes to
# the upstream unchanged). tests/e2e/test_openapi.py holds it to the server.
class ResponsesRequest(OpenAIModel):
    """POST /v1/responses: stateless, so whatever needs a stored response is refused."""

    model_config = ConfigDict(extra="allow")  # described for OpenAPI: the rest passes through

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


def parse_responses_request(raw: bytes) -> CheckedBody:
    body = json_object(raw)
    model = model_id(body)
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
        fail("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if not isinstance(body["input"], str | list):
        fail("Invalid type for 'input': expected a string or an array.", "input", "invalid_type")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        fail("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    names = _response_tool_names(body.get("tools"))
    check_tool_choice(body.get("tool_choice"), names, nested=False)
    return CheckedBody(body, model, bool(stream))


def _response_tool_names(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        fail("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            fail(f"Invalid type for 'tools[{index}]'.", f"tools[{index}]", "invalid_type")
        if tool.get("type") in ("function", "custom"):
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                param = f"tools[{index}].name"
                fail(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
            names.add(name)
    return names
