"""An Anthropic Messages request -> the chat request it means (OpenAI's body, with
OpenRouter's fields), decided and served like any chat request (docs/anthropic.md).

- `system` becomes the first message; `cache_control` everywhere is dropped (ignored).
- A user turn's `tool_result` blocks become `tool` messages (first, as Anthropic requires
  them first in the turn); its text, image and document blocks one user message after them.
- An assistant turn's text becomes its content, `tool_use` blocks its `tool_calls`, and
  `thinking` / `redacted_thinking` blocks its `reasoning_details` (OpenRouter's way to hand
  reasoning back, docs/fal-protocol.md §9.6).
- `tools[].input_schema` -> `tools[].function.parameters`; `tool_choice` auto/any/tool/none
  -> "auto"/"required"/named/"none"; `disable_parallel_tool_use` -> `parallel_tool_calls:
  false`; `stop_sequences` -> `stop`; `metadata.user_id` -> `user`; `thinking` ->
  `reasoning` (`budget_tokens` -> `max_tokens`; adaptive -> `enabled`).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..anthropic.errors import invalid_request
from ..anthropic.messages import (
    Base64Source,
    ContentBlock,
    ContentSource,
    CountTokensRequest,
    DocumentBlock,
    FileSource,
    ImageBlock,
    Message,
    MessagesRequest,
    PlainTextSource,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    URLSource,
)
from .anthropic_reasoning import redacted_detail, thinking_detail

TOOL_ERROR_PREFIX = "Error: "  # a failed tool's result, as the model reads it (no flag in chat)


def chat_body(request: MessagesRequest) -> dict[str, Any]:
    """The chat request body (what fal's OpenAI route receives, and what the prompt route
    parses as a chat request)."""
    body: dict[str, Any] = {"model": request.model, "messages": chat_messages(request)}
    body["max_tokens"] = request.max_tokens
    if request.stop_sequences:
        body["stop"] = request.stop_sequences
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.metadata is not None and request.metadata.user_id:
        body["user"] = request.metadata.user_id
    _add_tools(body, request)
    reasoning = reasoning_options(request)
    if reasoning is not None:
        body["reasoning"] = reasoning
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def reasoning_options(request: CountTokensRequest) -> dict[str, Any] | None:
    thinking = request.thinking
    if thinking is None or thinking.type == "disabled":
        return None
    if thinking.type == "enabled" and thinking.budget_tokens is not None:
        return {"max_tokens": thinking.budget_tokens}
    return {"enabled": True}


def _add_tools(body: dict[str, Any], request: CountTokensRequest) -> None:
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    **({"description": tool["description"]} if tool.get("description") else {}),
                    "parameters": tool["input_schema"],
                },
            }
            for tool in request.tools
        ]
    choice = request.tool_choice
    if choice is None:
        return
    if choice.type == "tool":
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    else:
        body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
    if choice.disable_parallel_tool_use and choice.type != "none":
        body["parallel_tool_calls"] = False


def chat_messages(request: CountTokensRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = request.system
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    elif isinstance(system, list) and system:
        messages.append({"role": "system", "content": _text_parts(system)})
    for index, message in enumerate(request.messages):
        if message.role == "user":
            messages.extend(_user_turn(message, index))
        else:
            messages.append(_assistant_turn(message, index))
    return messages


def _text_parts(blocks: list[TextBlock]) -> str | list[dict[str, Any]]:
    if len(blocks) == 1:
        return blocks[0].text
    return [{"type": "text", "text": block.text} for block in blocks]


def _user_turn(message: Message, index: int) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    turn: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for position, block in enumerate(message.content):
        where = f"messages.{index}.content.{position}"
        if isinstance(block, ToolResultBlock):
            turn.append(_tool_message(block, where))
        elif isinstance(block, TextBlock | ImageBlock | DocumentBlock):
            parts.extend(_content_parts(block, where))
        else:
            raise invalid_request(f"{where}: a '{block.type}' block belongs to an assistant turn.")
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        turn.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    if not turn:
        turn.append({"role": "user", "content": ""})
    return turn


def _tool_message(block: ToolResultBlock, where: str) -> dict[str, Any]:
    content: str | list[dict[str, Any]]
    if block.content is None or isinstance(block.content, str):
        content = block.content or ""
        if block.is_error:
            content = TOOL_ERROR_PREFIX + content
    else:
        parts: list[dict[str, Any]] = []
        for position, part in enumerate(block.content):
            parts.extend(_content_parts(part, f"{where}.content.{position}"))
        if block.is_error:
            parts.insert(0, {"type": "text", "text": TOOL_ERROR_PREFIX.strip()})
        texts = [p["text"] for p in parts if p["type"] == "text"]
        content = "\n".join(texts) if len(texts) == len(parts) else parts
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": content}


def _content_parts(
    block: TextBlock | ImageBlock | DocumentBlock, where: str
) -> list[dict[str, Any]]:
    if isinstance(block, TextBlock):
        return [{"type": "text", "text": block.text}]
    if isinstance(block, ImageBlock):
        return [{"type": "image_url", "image_url": {"url": _source_url(block.source, where)}}]
    return _document_parts(block, where)


def _document_parts(block: DocumentBlock, where: str) -> list[dict[str, Any]]:
    """Text documents become text; a PDF (base64 or URL) becomes OpenRouter's `file` part
    (docs/fal-protocol.md §9.6), which only fal's OpenAI route accepts."""
    source = block.source
    heading = "\n".join(x for x in (block.title, block.context) if x)
    prefix = [{"type": "text", "text": heading}] if heading else []
    if isinstance(source, PlainTextSource):
        return [*prefix, {"type": "text", "text": source.data}]
    if isinstance(source, ContentSource):
        if isinstance(source.content, str):
            return [*prefix, {"type": "text", "text": source.content}]
        parts = [*prefix]
        for position, inner in enumerate(source.content):
            parts.extend(_content_parts(inner, f"{where}.source.content.{position}"))
        return parts
    url = _source_url(source, where)
    name = (block.title or "document") + ("" if (block.title or "").endswith(".pdf") else ".pdf")
    return [*prefix, {"type": "file", "file": {"filename": name, "file_data": url}}]


def _source_url(source: Base64Source | URLSource | FileSource, where: str) -> str:
    if isinstance(source, FileSource):
        raise invalid_request(
            f"{where}.source: files of Anthropic's Files API ('file' sources) are not served "
            "here; send the data as 'base64' or a 'url'."
        )
    if isinstance(source, URLSource):
        return source.url
    return f"data:{source.media_type};base64,{source.data}"


def _assistant_turn(message: Message, index: int) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": "assistant", "content": message.content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for position, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = orjson.dumps(block.input).decode()
            calls.append(
                {"id": block.id, "type": "function",
                 "function": {"name": block.name, "arguments": arguments}}
            )  # fmt: skip
        elif isinstance(block, ThinkingBlock):
            details.append(thinking_detail(block.thinking, block.signature, len(details)))
        elif isinstance(block, RedactedThinkingBlock):
            details.append(redacted_detail(block.data, len(details)))
        else:
            where = f"messages.{index}.content.{position}"
            raise invalid_request(f"{where}: a '{_kind(block)}' block belongs to a user turn.")
    turn: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        turn["tool_calls"] = calls
    if details:
        turn["reasoning_details"] = details
    if turn["content"] is None and not calls:
        turn["content"] = ""
    return turn


def _kind(block: ContentBlock) -> str:
    return block.type
