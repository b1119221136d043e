"""An OpenAI chat request -> the fal app to call and its input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..openai.chat import ChatCompletionRequest
from .prompt import flatten_messages


@dataclass(frozen=True)
class FalCall:
    app: str
    input: dict[str, Any]


def build_fal_call(
    request: ChatCompletionRequest,
    *,
    chat_app: str,
    vision_app: str,
    prompt_limit: int,
    system_prompt_limit: int,
    model: str | None = None,
) -> FalCall:
    """`model`: the id fal takes, when it differs from the client's (`gpt-4o`)."""
    flat = flatten_messages(request.messages, prompt_limit, system_prompt_limit)
    payload: dict[str, Any] = {"model": model or request.model, "prompt": flat.prompt}
    if flat.system_prompt:
        payload["system_prompt"] = flat.system_prompt
    payload["reasoning"] = request.reasoning_requested
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.output_limit is not None:
        payload["max_tokens"] = request.output_limit
    if flat.image_urls:
        payload["image_urls"] = flat.image_urls
        return FalCall(vision_app, payload)
    return FalCall(chat_app, payload)
