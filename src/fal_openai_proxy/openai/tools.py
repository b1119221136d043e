"""Tool checks for chat requests, and what only fal's OpenAI route honours.

Tools are checked before routing, whatever the route: a malformed tool is the client's
mistake on every route, and a 400 naming the field is clearer than the upstream's error.
"""

from __future__ import annotations

from typing import Any, NoReturn

from .chat import AudioPart, ChatCompletionRequest, FilePart
from .errors import invalid_request

TOOL_CHOICES = ("none", "auto", "required")


def check_tools(chat: ChatCompletionRequest) -> None:
    """400 for a function tool without a name, or a `tool_choice` naming an unknown tool."""
    names: set[str] = set()
    for index, tool in enumerate(chat.tools or ()):
        kind = tool.get("type", "function")
        if kind == "function":
            function = tool.get("function")
            if not isinstance(function, dict):
                _missing(f"tools[{index}].function")
            names.add(_name(function, f"tools[{index}].function.name"))
        elif kind == "custom":
            custom = tool.get("custom")
            names.add(
                _name(custom if isinstance(custom, dict) else {}, f"tools[{index}].custom.name")
            )
        else:
            raise invalid_request(
                f"Invalid value for 'tools[{index}].type': expected 'function' or 'custom'.",
                f"tools[{index}].type",
                "invalid_value",
            )
    for index, function in enumerate(chat.functions or ()):
        names.add(_name(function, f"functions[{index}].name"))
    check_tool_choice(chat.tool_choice, names, nested=True)
    if chat.function_call is not None:
        choice = chat.function_call
        if isinstance(choice, dict) and choice.get("name") not in names:
            raise _unknown_tool("function_call", choice.get("name"))


def check_tool_choice(choice: Any, names: set[str], *, nested: bool) -> None:
    """`nested`: Chat's `{"type": "function", "function": {"name"}}`; else the Responses
    API's flat `{"type": "function", "name"}`."""
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise invalid_request(
                f"Invalid value for 'tool_choice': {choice!r}. Expected one of "
                "'none', 'auto', 'required', or a named tool.",
                "tool_choice",
                "invalid_value",
            )
        if choice == "required" and not names:
            raise invalid_request(
                "Invalid 'tool_choice': 'required' needs at least one tool in 'tools'.",
                "tool_choice",
                "invalid_value",
            )
        return
    if not isinstance(choice, dict):
        raise invalid_request("Invalid type for 'tool_choice'.", "tool_choice", "invalid_type")
    if choice.get("type") not in ("function", "custom"):
        return  # allowed_tools and server-tool choices are the upstream's to judge
    target = choice.get(choice["type"]) if nested else choice
    name = target.get("name") if isinstance(target, dict) else None
    if name not in names:
        raise _unknown_tool("tool_choice", name)


def needs_openrouter(chat: ChatCompletionRequest) -> bool:
    """Whether the request asks for something only the OpenAI route honours (MODEL_ROUTES
    `auto`). Cheap for a plain chat: a few attribute reads and one pass over the messages."""
    if chat.tools or chat.functions or chat.tool_choice is not None:
        return True
    if (chat.n is not None and chat.n > 1) or chat.logprobs:
        return True
    if chat.response_format is not None and chat.response_format.type != "text":
        return True
    for message in chat.messages:
        role = message.role
        if role == "tool" or role == "function":
            return True
        if role == "assistant" and message.tool_calls:
            return True
        if isinstance(message.content, list):
            for part in message.content:
                if isinstance(part, AudioPart | FilePart):
                    return True
    return False


def check_stream_options(chat: ChatCompletionRequest) -> None:
    if chat.stream_options is not None and not chat.stream:
        raise invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )


def _name(holder: dict[str, Any], param: str) -> str:
    name = holder.get("name")
    if not isinstance(name, str) or not name:
        _missing(param)
    return str(name)


def _missing(param: str) -> NoReturn:
    raise invalid_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _unknown_tool(param: str, name: Any) -> Exception:
    return invalid_request(
        f"Invalid value for '{param}': no tool named {name!r} is in 'tools'.",
        param,
        "invalid_value",
    )
