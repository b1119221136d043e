"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from openai.types.chat import ChatCompletionMessageParam

MODEL = "google/gemini-2.5-flash"
Records = Callable[..., list[dict[str, Any]]]


def ask(text: str) -> list[ChatCompletionMessageParam]:
    """A one-turn conversation."""
    return [{"role": "user", "content": text}]


def sim(directive: dict[str, Any]) -> str:
    """A simulator directive to put in a message: `[[sim {...}]]`."""
    return "[[sim " + json.dumps(directive) + "]]"


def tagged(text: str) -> tuple[str, str]:
    """A prompt with a unique token, to find this request's records in the simulator log."""
    token = f"tok{uuid.uuid4().hex[:12]}"
    return token, f"{token} {text}"


def of(records: list[dict[str, Any]], token: str) -> list[dict[str, Any]]:
    """The records whose fal input carries `token`."""
    return [r for r in records if token in json.dumps(r.get("body"))]
