"""Chat completions on fal's OpenAI route: which tools the simulated model calls, and its
signed reasoning (docs/fal-protocol.md §9.3, §9.6; docs/simulator.md).

- Tool calls: with tools and a user turn last (no tool results since the last assistant
  turn), the model calls a tool: the one `tool_choice` names, else the directive's `tool`
  (with `tool_args`), else the first; `tool_calls: [{"name", "arguments"}, ...]` makes
  several calls at once (`parallel_tool_calls: false` keeps the first), and `interleave`
  streams their argument fragments mixed. After tool results it answers quoting them.
- Reasoning: OpenRouter's `reasoning` text plus `reasoning_details`, a `reasoning.text`
  detail signed `sim-sig-<hash of the text>` in the model family's `format` (a Google model's
  detail also carries an `id`), and with `redacted_reasoning` a `reasoning.encrypted` one.
  Reasoning handed back in an assistant message must be as given: an altered signature or
  text, or a Google detail without its format and id, is a 400, as Anthropic refuses a
  modified thinking block.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from .directives import Directives

SIGNATURE_PREFIX = "sim-sig-"
REDACTED_PREFIX = "sim-redacted-"
_FORMATS = {"anthropic": "anthropic-claude-v1", "google": "google-gemini-v1",
            "openai": "openai-responses-v1"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


def sign(text: str) -> str:
    return SIGNATURE_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:32]


def reasoning_format(model: str) -> str:
    return _FORMATS.get(model.split("/", 1)[0], "unknown")


def reasoning_details(model: str, text: str, d: Directives) -> list[dict[str, Any]]:
    fmt = reasoning_format(model)
    detail: dict[str, Any] = {"type": "reasoning.text", "text": text, "signature": sign(text),
                              "format": fmt, "index": 0}  # fmt: skip
    if fmt == "google-gemini-v1":
        detail["id"] = "rs_" + hashlib.sha256(text.encode()).hexdigest()[:12]
    details = [detail]
    if d.redacted_reasoning:
        data = REDACTED_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:24]
        details.append({"type": "reasoning.encrypted", "data": data, "format": fmt, "index": 1})
    return details


def returned_reasoning_problem(body: dict[str, Any]) -> str | None:
    """Why reasoning handed back in an assistant message is not what the model gave."""
    model = str(body.get("model") or "")
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        for detail in message.get("reasoning_details") or ():
            if not isinstance(detail, dict):
                return "Invalid reasoning_details item"
            problem = _detail_problem(detail, model)
            if problem:
                return problem
    return None


def _detail_problem(detail: dict[str, Any], model: str) -> str | None:
    kind = detail.get("type")
    if kind == "reasoning.encrypted":
        data = detail.get("data")
        ok = isinstance(data, str) and data.startswith(REDACTED_PREFIX)
        return None if ok else "Invalid 'data' in redacted reasoning block"
    if kind != "reasoning.text" or "signature" not in detail:
        return None
    text = detail.get("text") if isinstance(detail.get("text"), str) else ""
    if detail["signature"] != sign(str(text)):
        return "Invalid 'signature' in reasoning block"
    if reasoning_format(model) == "google-gemini-v1" and (
        detail.get("format") != "google-gemini-v1" or not detail.get("id")
    ):
        return "Reasoning of a Google model must come back with its format and id"
    return None


def tool_results_since_assistant(messages: list[Any]) -> list[dict[str, Any]]:
    """The tool messages after the last assistant turn (Anthropic's user turn of tool
    results and text arrives as tool messages then a user message)."""
    results: list[dict[str, Any]] = []
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            break
        if message.get("role") in ("tool", "function"):
            results.append(message)
    return list(reversed(results))


def plan_calls(
    body: dict[str, Any], d: Directives, picked: dict[str, Any] | None, value_for: Any
) -> list[ToolCall]:
    """The calls the model makes; `picked` is the tool the plain rules chose (or None)."""
    if picked is None:
        return []
    tools = {t.get("name"): t for t in _functions(body)}
    choice = body.get("tool_choice")
    named = isinstance(choice, dict)
    wanted: list[tuple[str, Any]]
    if d.tool_calls and not named:
        wanted = [(c["name"], c.get("arguments")) for c in d.tool_calls]
    elif d.tool is not None and not named and d.tool in tools:
        wanted = [(d.tool, d.tool_args)]
    else:
        wanted = [(str(picked.get("name")), None)]
    if body.get("parallel_tool_calls") is False:
        wanted = wanted[:1]
    calls = []
    for name, arguments in wanted:
        if arguments is None:
            arguments = value_for((tools.get(name) or {}).get("parameters"))
        text = arguments if isinstance(arguments, str) else _json(arguments)
        calls.append(ToolCall(f"call_{uuid.uuid4().hex[:24]}", name, text))
    return calls


def media_note(messages: list[Any]) -> str:
    """` [images: N]` (and files) for the media of the last user turn, as the prompt route's
    vision app notes them."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            parts = message.get("content")
            parts = parts if isinstance(parts, list) else []
            images = sum(1 for p in parts if isinstance(p, dict) and p.get("type") == "image_url")
            files = sum(1 for p in parts if isinstance(p, dict) and p.get("type") == "file")
            note = f" [images: {images}]" if images else ""
            return note + (f" [files: {files}]" if files else "")
    return ""


def _functions(body: dict[str, Any]) -> list[dict[str, Any]]:
    found = [t["function"] for t in body.get("tools") or () if isinstance(t, dict)
             and isinstance(t.get("function"), dict)]  # fmt: skip
    return found + [f for f in body.get("functions") or () if isinstance(f, dict)]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
