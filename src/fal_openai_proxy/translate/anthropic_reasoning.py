"""Thinking blocks <-> OpenRouter's `reasoning_details` (docs/fal-protocol.md §9.6).

A `reasoning.text` detail is a `thinking` block (its `signature` the block's), a
`reasoning.encrypted` one a `redacted_thinking` block (its `data` the block's), a
`reasoning.summary` one a `thinking` block without a signature. A detail may also carry a
`format` (which provider signed it) and an `id`, which Anthropic's blocks have no place for:
those travel inside the signature (or data), in an envelope that only this proxy opens, so
that a Gemini or OpenAI signature comes back to the route exactly as it was given. A plain
Anthropic signature (format `anthropic-claude-v1` or none, no id) is passed verbatim.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

ENVELOPE = "falrd1."  # a prefix no provider's signature starts with
_PLAIN_FORMATS = (None, "unknown", "anthropic-claude-v1")


def seal(value: str, detail: dict[str, Any]) -> str:
    """A detail's signature (or data) as the client keeps it."""
    fmt, detail_id = detail.get("format"), detail.get("id")
    if fmt in _PLAIN_FORMATS and detail_id is None:
        return value
    packed = orjson.dumps({"f": fmt, "i": detail_id, "v": value})
    return ENVELOPE + base64.urlsafe_b64encode(packed).decode()


def unseal(value: str) -> tuple[str, dict[str, Any]]:
    """The signature (or data) and the detail fields (`format`, `id`) it came with."""
    if not value.startswith(ENVELOPE):
        return value, {}
    try:
        packed = orjson.loads(base64.urlsafe_b64decode(value[len(ENVELOPE) :]))
    except (binascii.Error, ValueError):
        return value, {}
    if not isinstance(packed, dict) or not isinstance(packed.get("v"), str):
        return value, {}
    fields = {k: packed[s] for k, s in (("format", "f"), ("id", "i")) if packed.get(s) is not None}
    return packed["v"], fields


def thinking_detail(text: str, signature: str, index: int) -> dict[str, Any]:
    """A `thinking` block, as the `reasoning.text` detail that produced it."""
    value, fields = unseal(signature)
    detail: dict[str, Any] = {"type": "reasoning.text", "text": text, "index": index, **fields}
    if value:
        detail["signature"] = value
    return detail


def redacted_detail(data: str, index: int) -> dict[str, Any]:
    value, fields = unseal(data)
    return {"type": "reasoning.encrypted", "data": value, "index": index, **fields}


def blocks_from_details(details: list[Any]) -> list[dict[str, Any]]:
    """The thinking blocks of a non-stream answer's `message.reasoning_details`."""
    blocks: list[dict[str, Any]] = []
    for detail in details:
        if not isinstance(detail, dict):
            continue
        kind = detail.get("type")
        if kind == "reasoning.encrypted" and isinstance(detail.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": seal(detail["data"], detail)})
        elif kind in ("reasoning.text", "reasoning.summary"):
            text = detail.get("text") if kind == "reasoning.text" else detail.get("summary")
            signature = detail.get("signature")
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": text if isinstance(text, str) else "",
                    "signature": seal(signature, detail) if isinstance(signature, str) else "",
                }
            )
    return blocks
