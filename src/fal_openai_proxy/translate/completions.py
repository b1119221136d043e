"""fal's prompt-app output -> OpenAI's legacy `text_completion` bodies and stream frames.

The shape is OpenAI's `CreateCompletionResponse`: `{id: "cmpl-…", object: "text_completion",
created, model, system_fingerprint, choices: [{text, index, logprobs, finish_reason}],
usage?}`; a stream sends the same object per chunk, `finish_reason` null until the last, and
with `stream_options.include_usage` a final chunk of empty `choices` carrying `usage`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from .response import SYSTEM_FINGERPRINT


def new_text_completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


def text_completion_body(
    *, model: str, text: str, usage: dict[str, int] | None, finish_reason: str = "stop"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": new_text_completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


@dataclass(slots=True)
class TextCompletionEncoder:
    """Frames `text_completion` stream chunks sharing one id, model and timestamp: the same
    methods as `response.ChunkEncoder`, so `StreamTranslator` drives either."""

    model: str
    include_usage: bool = False
    completion_id: str = field(default_factory=new_text_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    _prefix: bytes = field(init=False, repr=False)
    _usage_head: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        head: dict[str, Any] = {
            "id": self.completion_id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        self._usage_head = (
            b"data: " + orjson.dumps({**head, "choices": []})[:-1] if self.include_usage else b""
        )
        if self.include_usage:
            head["usage"] = None  # every chunk but the last, as on chat streams
        # b'data: {"id":...,"choices":[{"index":0,"text":'
        self._prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":[{"index":0,"text":'

    def role(self) -> bytes:
        return b""  # text completions have no role chunk

    def content(self, text: str) -> bytes:
        return self._prefix + orjson.dumps(text) + b',"logprobs":null,"finish_reason":null}]}\n\n'

    def reasoning(self, text: str) -> bytes:
        return b""  # the legacy shape has no place for reasoning

    def finish(self, reason: str = "stop") -> bytes:
        return (
            self._prefix + b'"","logprobs":null,"finish_reason":"' + reason.encode() + b'"}]}\n\n'
        )

    def usage(self, usage: dict[str, int] | None) -> bytes:
        return self._usage_head + b',"usage":' + orjson.dumps(usage) + b"}\n\n"
