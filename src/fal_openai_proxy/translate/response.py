"""fal output -> OpenAI `chat.completion` bodies and `chat.completion.chunk` SSE frames.

Stream frames are built from byte templates, not models: the per-chunk cost is one
`orjson.dumps` of the new text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from .. import __version__

SYSTEM_FINGERPRINT = f"fp_fal_openai_proxy_{__version__}"
DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


def new_completion_id() -> str:
    return f"chatcmpl-{os.urandom(16).hex()}"  # as uuid4().hex, for a fraction of its cost


def map_usage(usage: Any) -> dict[str, int] | None:
    """fal usage -> OpenAI usage; None when fal gave none (never invented)."""
    if usage is None or not (type(usage) is dict or isinstance(usage, Mapping)):
        return None
    prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    if prompt is None and completion is None:
        return None
    prompt, completion = prompt or 0, completion or 0
    total = _int(usage.get("total_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if total is not None else prompt + completion,
    }


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        return None
    return int(value)


_NUMBER = (int, float)


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text up to the first stop sequence, and whether one was found."""
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def completion_body(
    *,
    completion_id: str,
    model: str,
    content: str,
    reasoning: str | None,
    usage: dict[str, int] | None,
    created: int | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if reasoning:
        message["reasoning_content"] = reasoning
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


@dataclass(slots=True)
class ChunkEncoder:
    """Frames `chat.completion.chunk` events sharing one id, model and timestamp."""

    model: str
    include_usage: bool = False
    completion_id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    _prefix: bytes = field(init=False, repr=False)
    _open: bytes = field(init=False, repr=False)
    _usage_head: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        head = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        # Only streams that asked for usage keep the usage chunk's head.
        self._usage_head = (
            b"data: " + orjson.dumps({**head, "choices": []})[:-1] if self.include_usage else b""
        )
        if self.include_usage:
            head["usage"] = None  # every chunk but the last carries `"usage": null`
        # b'data: {"id":...,"choices":[{"index":0,"delta":'
        self._prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":[{"index":0,"delta":'
        self._open = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def role(self) -> bytes:
        return self._prefix + b'{"role":"assistant","content":""}' + self._open

    def content(self, text: str) -> bytes:
        return self._prefix + b'{"content":' + orjson.dumps(text) + b"}" + self._open

    def reasoning(self, text: str) -> bytes:
        return self._prefix + b'{"reasoning_content":' + orjson.dumps(text) + b"}" + self._open

    def finish(self, reason: str = "stop") -> bytes:
        return (
            self._prefix + b'{},"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]}\n\n'
        )

    def usage(self, usage: dict[str, int] | None) -> bytes:
        return self._usage_head + b',"usage":' + orjson.dumps(usage) + b"}\n\n"


class FrameEncoder(Protocol):
    """What `StreamTranslator` needs: `ChunkEncoder` (chat) or `TextCompletionEncoder`."""

    @property
    def include_usage(self) -> bool: ...
    def role(self) -> bytes: ...
    def content(self, text: str) -> bytes: ...
    def reasoning(self, text: str) -> bytes: ...
    def finish(self, reason: str = "stop") -> bytes: ...
    def usage(self, usage: dict[str, int] | None) -> bytes: ...


def error_frame(body: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(body) + b"\n\n"
