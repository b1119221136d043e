"""Pure repairs of the chat answers of fal's OpenAI route (OpenRouter's API), so that every
body and chunk validates against OpenAI's schemas (docs/fal-protocol.md §9.3-§9.5).

Upstream errors found inside a 200 answer are raised as `UpstreamStreamError`; the services
turn them into our error shape, in the framing of the stream they belong to.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from ..fal.decode import loads_object
from ..fal.errors import FalBrokenError, UpstreamStreamError
from .cost import Measure, reported_cost, strip_accounting
from .response import DONE, SYSTEM_FINGERPRINT

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
# Fields of a chat request that only this proxy reads: never sent upstream.
_PROXY_ONLY: frozenset[str] = frozenset()


# -- chat requests -----------------------------------------------------------------------------


def upstream_chat_body(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The client's body for the route: the seed's `reasoning: true`, `reasoning_effort` and
    OpenRouter's `reasoning: {...}` become one OpenRouter `reasoning` object
    (docs/fal-protocol.md §9.3), with `effort` or `max_tokens`, never both: an explicit
    `reasoning.max_tokens` wins over `reasoning_effort`."""
    body = {k: v for k, v in raw.items() if k not in _PROXY_ONLY}
    reasoning = body.pop("reasoning", None)
    effort = body.pop("reasoning_effort", None)
    merged: dict[str, Any] | None = None
    if isinstance(reasoning, dict):
        merged = dict(reasoning)
    elif reasoning is True:
        merged = {"enabled": True}
    if isinstance(effort, str):
        merged = merged if merged is not None else {}
        if "max_tokens" not in merged:  # OpenRouter takes one budget, not both
            merged.setdefault("effort", effort)
    if merged is not None:
        body["reasoning"] = merged
    return body


# -- chat answers ------------------------------------------------------------------------------


def repair_completion(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A `chat.completion` from the route's JSON answer; raises on an error inside a 200."""
    raise_if_error(body)
    choices = body.get("choices")
    body["choices"] = choices = choices if isinstance(choices, list) else []
    for position, choice in enumerate(choices):
        if choice.get("finish_reason") == "error":
            # A provider failed after partial output: not a complete answer
            # (docs/fal-protocol.md §9.3).
            raise _choice_error(choice)
        choice.setdefault("index", position)
        choice.setdefault("logprobs", None)
        choice["finish_reason"] = _finish_reason(choice.get("finish_reason")) or "stop"
        message = choice.get("message")
        if not isinstance(message, dict):
            message = choice["message"] = {}
        message["role"] = "assistant"
        message.setdefault("content", None)
        message.setdefault("refusal", None)
        if isinstance(message.get("reasoning"), str):
            message["reasoning_content"] = message["reasoning"]
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                _repair_tool_call(call)
        elif calls is not None:
            del message["tool_calls"]
    _repair_head(body, model, "chat.completion")
    usage = _chat_usage(body.get("usage"))
    if usage is None:
        body.pop("usage", None)
    else:
        body["usage"] = usage
    return body


class ChatChunkRepair:
    """The route's stream events -> our frames: one id, every chunk schema-valid, usage only
    when asked for, and an upstream error raised instead of passed on."""

    __slots__ = (
        "_created", "_id", "_include_usage", "_keep_accounting", "_model", "_usage_sent",
        "finished", "over", "reported", "used",
    )  # fmt: skip

    def __init__(self, model: str, include_usage: bool, keep_accounting: bool = False) -> None:
        self._model = model
        self._include_usage = include_usage
        # OpenRouter's cost fields reach the client only if it asked for them itself.
        self._keep_accounting = keep_accounting
        self._id: str | None = None
        self._created: int | None = None
        self._usage_sent = False
        self.finished: set[int] = set()
        self.over = False  # [DONE] was sent
        self.used = Measure()  # the tokens of the last usage seen
        self.reported: float | None = None  # OpenRouter's `usage.cost`, if it came

    def feed(self, data: bytes) -> bytes:
        """The frames for one upstream event (b"" to drop it). `[DONE]` ends the stream."""
        if data == b"[DONE]":
            return self.end()
        chunk = loads_object(data)
        raise_if_error(chunk)
        choices = chunk.get("choices")
        chunk["choices"] = choices = choices if isinstance(choices, list) else []
        for position, choice in enumerate(choices):
            if choice.get("finish_reason") == "error":
                raise _choice_error(choice)
            self._repair_choice(choice, position)
        usage = _chat_usage(chunk.get("usage"))
        if usage is not None:
            self.used, self.reported = chat_accounting(usage, self._keep_accounting)
        if not choices:
            if usage is None or not self._include_usage or self._usage_sent:
                return b""  # a debug chunk, or usage nobody asked for
            self._usage_sent = True
        if self._include_usage:
            chunk["usage"] = usage if not choices else None
        else:
            chunk.pop("usage", None)
        self._repair_ids(chunk)
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def end(self) -> bytes:
        """The last frames: a usage chunk if one was asked for and none came, and [DONE]."""
        if not self.finished:
            raise FalBrokenError("the upstream ended the stream before the answer was complete")
        self.over = True
        frames = b""
        if self._include_usage and not self._usage_sent:
            chunk: dict[str, Any] = {"choices": [], "usage": None}
            self._repair_ids(chunk)
            frames = b"data: " + orjson.dumps(chunk) + b"\n\n"
            self._usage_sent = True
        return frames + DONE

    def _repair_choice(self, choice: dict[str, Any], position: int) -> None:
        index = choice.get("index")
        if not isinstance(index, int):
            choice["index"] = index = position
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = choice["delta"] = {}
        if isinstance(delta.get("reasoning"), str):
            delta["reasoning_content"] = delta["reasoning"]
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call_position, call in enumerate(calls):
                if isinstance(call, dict):
                    call.setdefault("index", call_position)
                    function = call.get("function")
                    if isinstance(function, dict) and "arguments" in function:
                        function["arguments"] = _arguments(function["arguments"])
        elif calls is not None:
            del delta["tool_calls"]
        reason = _finish_reason(choice.get("finish_reason"))
        choice["finish_reason"] = reason
        if reason is not None:
            self.finished.add(index)

    def _repair_ids(self, chunk: dict[str, Any]) -> None:
        if self._id is None:
            given = chunk.get("id")
            self._id = given if isinstance(given, str) and given else new_id("chatcmpl")
            created = chunk.get("created")
            self._created = created if isinstance(created, int) else int(time.time())
        chunk["id"] = self._id
        chunk["object"] = "chat.completion.chunk"
        chunk["created"] = self._created
        if not isinstance(chunk.get("model"), str):
            chunk["model"] = self._model
        if not isinstance(chunk.get("system_fingerprint"), str):
            chunk["system_fingerprint"] = SYSTEM_FINGERPRINT


def _repair_head(body: dict[str, Any], model: str, kind: str) -> None:
    if not isinstance(body.get("id"), str) or not body["id"]:
        body["id"] = new_id("chatcmpl")
    body["object"] = kind
    if not isinstance(body.get("created"), int):
        body["created"] = int(time.time())
    if not isinstance(body.get("model"), str):
        body["model"] = model
    if not isinstance(body.get("system_fingerprint"), str):
        body["system_fingerprint"] = SYSTEM_FINGERPRINT


def _repair_tool_call(call: Any) -> None:
    if not isinstance(call, dict):
        return
    call.setdefault("type", "function")
    if not isinstance(call.get("id"), str):
        call["id"] = new_id("call")
    function = call.get("function")
    if isinstance(function, dict):
        function.setdefault("name", "")
        function["arguments"] = _arguments(function.get("arguments", ""))


def _arguments(value: Any) -> str:
    """Arguments are JSON text; some providers hand over the parsed object."""
    if isinstance(value, str):
        return value
    return "" if value is None else orjson.dumps(value).decode()


def _finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    return value if value in FINISH_REASONS else "stop"


def _chat_usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = as_int(usage.get("prompt_tokens"))
    completion = as_int(usage.get("completion_tokens"))
    usage["prompt_tokens"] = prompt
    usage["completion_tokens"] = completion
    total = usage.get("total_tokens")
    usage["total_tokens"] = total if is_int(total) else prompt + completion
    for details in ("prompt_tokens_details", "completion_tokens_details"):
        if details in usage and not isinstance(usage[details], dict):
            del usage[details]
    return usage


def chat_accounting(usage: dict[str, Any], keep: bool) -> tuple[Measure, float | None]:
    """A chat (or embeddings) usage's tokens and OpenRouter's cost; the cost fields are then
    dropped from it unless `keep` (docs/fal-protocol.md §14.4)."""
    used = Measure(
        input_tokens=as_int(usage.get("prompt_tokens")),
        output_tokens=as_int(usage.get("completion_tokens")),
    )
    cost = reported_cost(usage)
    if not keep:
        strip_accounting(usage)
    return used, cost


def raise_if_failed(chunk: Mapping[str, Any]) -> None:
    """Raise the upstream error a chunk (or answer) carries: a top-level `error`, or a choice
    that ended with `finish_reason: "error"` (docs/fal-protocol.md §9.3)."""
    raise_if_error(chunk)
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and choice.get("finish_reason") == "error":
            raise _choice_error(choice)


def raise_if_error(body: Mapping[str, Any]) -> None:
    error = body.get("error")
    if error:
        raise error_from(error)


def _choice_error(choice: Mapping[str, Any]) -> UpstreamStreamError:
    error = choice.get("error")
    if error:
        return error_from(error)
    return UpstreamStreamError("The model provider failed while answering.")


def error_from(error: Any) -> UpstreamStreamError:
    if isinstance(error, dict):
        message = error.get("message")
        code = error.get("code")
        metadata = error.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("error_type"), str):
            code = metadata["error_type"]
        return UpstreamStreamError(
            message if isinstance(message, str) and message else "The upstream reported an error.",
            None if code is None else str(code),
        )
    return UpstreamStreamError(str(error))


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"
