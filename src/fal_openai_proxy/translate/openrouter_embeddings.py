"""Pure repairs of the embeddings answers of fal's OpenAI route (OpenRouter's)."""

from __future__ import annotations

from typing import Any

from ..fal.errors import FalBrokenError
from .openrouter import as_int, is_int, raise_if_error


def repair_embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    """OpenAI's list shape around the route's vectors, which pass unchanged."""
    raise_if_error(body)
    data = body.get("data")
    if not isinstance(data, list):
        raise FalBrokenError("the embeddings answer has no data")
    for position, item in enumerate(data):
        if not isinstance(item, dict) or "embedding" not in item:
            raise FalBrokenError("an embeddings item has no vector")
        item["object"] = "embedding"
        if not is_int(item.get("index")):
            item["index"] = position
    body["object"] = "list"
    if not isinstance(body.get("model"), str):
        body["model"] = model
    usage = body.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    usage["prompt_tokens"] = as_int(usage.get("prompt_tokens"))
    if not is_int(usage.get("total_tokens")):
        usage["total_tokens"] = usage["prompt_tokens"]
    body["usage"] = usage
    return body
