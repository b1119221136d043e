"""A chat answer -> Anthropic's `message` (the anthropic SDK's `types/message.py`).

Content comes in Anthropic's order: thinking blocks, then text, then one `tool_use` block
per tool call, its `input` the parsed arguments. `stop_reason` follows the finish reason:
`length` -> `max_tokens`, tool calls -> `tool_use`, `content_filter` -> `refusal`, a stop
sequence -> `stop_sequence` (with the sequence when it is known), else `end_turn`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from .anthropic_reasoning import blocks_from_details

END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE, REFUSAL = (
    "end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal",
)  # fmt: skip


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def stop_reason(
    finish: Any, choice: Mapping[str, Any], stops: list[str], called_tools: bool
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a choice's finish reason. Which stop sequence ended
    the answer: the choice's `stop_reason` when it names one (vLLM-based providers), else the
    only one given when the provider's native reason says a stop sequence
    (docs/fal-protocol.md §9.6); else unknown (None)."""
    if called_tools or finish in ("tool_calls", "function_call"):
        return TOOL_USE, None
    if finish == "length":
        return MAX_TOKENS, None
    if finish == "content_filter":
        return REFUSAL, None
    matched = choice.get("stop_reason")
    if isinstance(matched, str) and matched in stops:
        return STOP_SEQUENCE, matched
    if stops and choice.get("native_finish_reason") == "stop_sequence":
        return STOP_SEQUENCE, stops[0] if len(stops) == 1 else None
    return END_TURN, None


def usage(chat_usage: Any) -> dict[str, int]:
    """OpenAI usage -> Anthropic's: `input_tokens` leaves out the cached and cache-written
    tokens, which Anthropic counts apart (`types/usage.py`)."""
    if not isinstance(chat_usage, Mapping):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = _int(chat_usage.get("prompt_tokens", chat_usage.get("input_tokens")))
    output = _int(chat_usage.get("completion_tokens", chat_usage.get("output_tokens")))
    details = chat_usage.get("prompt_tokens_details")
    cached = written = 0
    if isinstance(details, Mapping):
        cached = _int(details.get("cached_tokens"))
        written = _int(details.get("cache_write_tokens"))
    result = {"input_tokens": max(prompt - cached - written, 0), "output_tokens": output}
    if cached or written:
        result["cache_read_input_tokens"] = cached
        result["cache_creation_input_tokens"] = written
    return result


def message_body(
    *,
    model: str,
    content: list[dict[str, Any]],
    reason: tuple[str, str | None],
    usage: dict[str, int],
    message_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason[0],
        "stop_sequence": reason[1],
        "usage": usage,
    }


def from_completion(completion: Mapping[str, Any], model: str, stops: list[str]) -> dict[str, Any]:
    """A repaired `chat.completion` (translate/openai_route.py) -> a message."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], Mapping) else {}
    message = choice.get("message") if isinstance(choice.get("message"), Mapping) else {}
    assert isinstance(message, Mapping)
    content = thinking_blocks(message)
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal and not text:
        content.append({"type": "text", "text": refusal})
    calls = [c for c in message.get("tool_calls") or () if isinstance(c, Mapping)]
    content.extend(tool_use_block(call) for call in calls)
    reason = stop_reason(choice.get("finish_reason"), choice, stops, bool(calls))
    return message_body(
        model=model, content=content, reason=reason, usage=usage(completion.get("usage"))
    )


def thinking_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    details = message.get("reasoning_details")
    if isinstance(details, list) and details:
        return blocks_from_details(details)
    reasoning = message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        return [{"type": "thinking", "thinking": reasoning, "signature": ""}]
    return []


def tool_use_block(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call.get("function"), Mapping) else {}
    assert isinstance(function, Mapping)
    name = function.get("name")
    call_id = call.get("id")
    return {
        "type": "tool_use",
        "id": call_id if isinstance(call_id, str) and call_id else new_tool_use_id(),
        "name": name if isinstance(name, str) else "",
        "input": tool_input(function.get("arguments")),
    }


def new_tool_use_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments (JSON text) as the object Anthropic's `input` is. Arguments that
    are not a JSON object are kept under `"arguments"` rather than lost."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


def from_prompt_output(
    output: Mapping[str, Any], model: str, text: str, stopped_at: str | None
) -> dict[str, Any]:
    """A prompt-route answer (fal's `{output, reasoning?, usage?}`, docs/fal-protocol.md §8),
    `text` already cut at the first stop sequence (`stopped_at`)."""
    content: list[dict[str, Any]] = []
    reasoning = output.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    if text:
        content.append({"type": "text", "text": text})
    reason = (STOP_SEQUENCE, stopped_at) if stopped_at is not None else (END_TURN, None)
    return message_body(
        model=model, content=content, reason=reason, usage=usage(output.get("usage"))
    )


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0)
