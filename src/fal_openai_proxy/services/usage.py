"""What a request used, as fal's answers tell it, into `context.usage` (written by the
accounts store after the request).

Interim: the cost module (issue 15, cost sources) owns where cost comes from; until it lands,
OpenRouter's reported `usage.cost` is taken as it comes (docs/fal-protocol.md §9).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..serve.context import Usage


def note_llm_usage(usage: Usage, raw: Any) -> None:
    """Token counts (OpenAI's or fal's names) and OpenRouter's cost from a `usage` object."""
    if not isinstance(raw, Mapping):
        return
    prompt = _count(raw.get("prompt_tokens", raw.get("input_tokens")))
    completion = _count(raw.get("completion_tokens", raw.get("output_tokens")))
    if prompt is not None:
        usage.input_tokens = prompt
    if completion is not None:
        usage.output_tokens = completion
    cost = raw.get("cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and 0 <= cost < 1e6:
        usage.cost = float(cost)
        usage.cost_source = "openrouter"


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)
