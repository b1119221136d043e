"""Pure repairs of what fal's OpenAI route (OpenRouter's API) sends, so that every body, chunk
and event validates against OpenAI's schemas (docs/fal-protocol.md §9.3-§9.5).

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
    (docs/fal-protocol.md §9.3)."""
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
        merged.setdefault("effort", effort)
    if merged is not None:
        body["reasoning"] = merged
    return body


# -- chat answers ------------------------------------------------------------------------------


def repair_completion(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A `chat.completion` from the route's JSON answer; raises on an error inside a 200."""
    _raise_if_error(body)
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
        _raise_if_error(chunk)
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
            self._id = given if isinstance(given, str) and given else _new_id("chatcmpl")
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
        body["id"] = _new_id("chatcmpl")
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
        call["id"] = _new_id("call")
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
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    usage["prompt_tokens"] = prompt
    usage["completion_tokens"] = completion
    total = usage.get("total_tokens")
    usage["total_tokens"] = total if _is_int(total) else prompt + completion
    for details in ("prompt_tokens_details", "completion_tokens_details"):
        if details in usage and not isinstance(usage[details], dict):
            del usage[details]
    return usage


def chat_accounting(usage: dict[str, Any], keep: bool) -> tuple[Measure, float | None]:
    """A chat (or embeddings) usage's tokens and OpenRouter's cost; the cost fields are then
    dropped from it unless `keep` (docs/fal-protocol.md §13.4)."""
    used = Measure(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
    )
    cost = reported_cost(usage)
    if not keep:
        strip_accounting(usage)
    return used, cost


def _raise_if_error(body: Mapping[str, Any]) -> None:
    error = body.get("error")
    if error:
        raise _error_from(error)


def _choice_error(choice: Mapping[str, Any]) -> UpstreamStreamError:
    error = choice.get("error")
    if error:
        return _error_from(error)
    return UpstreamStreamError("The model provider failed while answering.")


def _error_from(error: Any) -> UpstreamStreamError:
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


# -- Responses API -----------------------------------------------------------------------------

# Fields OpenAI's `Response` always carries; OpenRouter may leave some out
# (docs/fal-protocol.md §9.5).
_RESPONSE_DEFAULTS: dict[str, Any] = {
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "temperature": None,
    "tool_choice": "auto",
    "tools": [],
    "top_p": None,
}
TERMINAL_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete"})
_LIFECYCLE_EVENTS = frozenset({"response.created", "response.in_progress", *TERMINAL_EVENTS})


def repair_response(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A `response` object from the route's non-stream answer; raises if it failed."""
    if body.get("object") != "response" and body.get("error"):
        _raise_if_error(body)
    if body.get("status") == "failed":
        raise _error_from(body.get("error") or "The response failed.")
    return _fill_response(body, model)


def _fill_response(response: dict[str, Any], model: str) -> dict[str, Any]:
    if not isinstance(response.get("id"), str) or not response["id"]:
        response["id"] = _new_id("resp")
    response["object"] = "response"
    if not _is_int(response.get("created_at")):
        response["created_at"] = int(time.time())
    if not isinstance(response.get("model"), str):
        response["model"] = model
    if not isinstance(response.get("output"), list):
        response["output"] = []
    for key, value in _RESPONSE_DEFAULTS.items():
        if response.get(key) is None and value is not None:
            response[key] = value.copy() if isinstance(value, dict | list) else value
        else:
            response.setdefault(key, value)
    usage = response.get("usage")
    if isinstance(usage, dict):
        input_tokens = _int(usage.get("input_tokens"))
        output_tokens = _int(usage.get("output_tokens"))
        usage["input_tokens"], usage["output_tokens"] = input_tokens, output_tokens
        if not _is_int(usage.get("total_tokens")):
            usage["total_tokens"] = input_tokens + output_tokens
        if not isinstance(usage.get("input_tokens_details"), dict):
            usage["input_tokens_details"] = {}
        usage["input_tokens_details"].setdefault("cached_tokens", 0)
        usage["input_tokens_details"].setdefault("cache_write_tokens", 0)
        if not isinstance(usage.get("output_tokens_details"), dict):
            usage["output_tokens_details"] = {"reasoning_tokens": 0}
        usage["output_tokens_details"].setdefault("reasoning_tokens", 0)
    elif usage is not None:
        del response["usage"]
    return response


def response_accounting(response: dict[str, Any], keep: bool) -> tuple[Measure, float | None]:
    """A `response`'s tokens and OpenRouter's cost; the cost fields then dropped unless
    `keep` (docs/fal-protocol.md §13.4)."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return Measure(), None
    used = Measure(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
    )
    cost = reported_cost(usage)
    if not keep:
        strip_accounting(usage)
    return used, cost


class ResponsesStreamRepair:
    """The route's Responses events -> our frames, in OpenAI's framing (`event:` lines, a
    rising `sequence_number`, no `[DONE]`). What the SDK's `responses.stream()` needs
    (docs/openai-clients.md): `response.created` first, one id throughout, and a terminal
    event at the end; an upstream error becomes `response.failed`."""

    __slots__ = (
        "_added", "_done", "_keep_accounting", "_model", "_seq", "reported", "response",
        "terminal", "used",
    )  # fmt: skip

    @property
    def over(self) -> bool:
        return self.terminal

    def __init__(self, model: str, keep_accounting: bool = False) -> None:
        self._model = model
        self._keep_accounting = keep_accounting
        self._seq = 0
        self._added: set[int] = set()
        self._done: dict[int, Any] = {}
        self.response: dict[str, Any] | None = None  # the latest snapshot
        self.terminal = False
        self.used = Measure()
        self.reported: float | None = None

    def feed(self, data: bytes) -> bytes:
        if data == b"[DONE]" or self.terminal:
            return b""
        event = loads_object(data)
        kind = event.get("type")
        if not isinstance(kind, str):
            _raise_if_error(event)
            return b""
        if kind == "error" or kind == "response.error":
            raise _error_from(event.get("error") or event)
        if self.response is None and kind != "response.created":
            if kind == "response.failed":
                raise _error_from(_response_error(event))
            return b""  # e.g. `response.debug` before `response.created`: the SDK refuses it
        if kind in _LIFECYCLE_EVENTS:
            response = event.get("response")
            if not isinstance(response, dict):
                response = dict(self.response or {})
            if kind == "response.failed":
                raise _error_from(_response_error(event))
            if self.response is not None:
                response["id"] = self.response["id"]  # the SDK checks the id never changes
            event["response"] = self.response = _fill_response(response, self._model)
            if isinstance(response.get("usage"), dict):
                self.used, self.reported = response_accounting(response, self._keep_accounting)
            if kind == "response.completed" and not response["output"] and self._done:
                response["output"] = [self._done[i] for i in sorted(self._done)]
        index = event.get("output_index")
        if kind == "response.output_item.added" and isinstance(index, int):
            self._added.add(index)
        elif kind == "response.output_item.done" and isinstance(index, int):
            self._done[index] = event.get("item")
        if kind in TERMINAL_EVENTS:
            self.terminal = True
        return self._frame(kind, event)

    def end(self) -> bytes:
        """At the upstream's end: nothing if a terminal event came. OpenRouter sometimes stops
        after the last `output_item.done` (docs/fal-protocol.md §9.5): that answer is whole,
        so complete it."""
        if self.terminal:
            return b""
        if self.response is None or not self._done or not self._added <= set(self._done):
            raise FalBrokenError("the upstream ended the stream before the answer was complete")
        response = dict(self.response)
        response["status"] = "completed"
        response["output"] = [self._done[i] for i in sorted(self._done)]
        self.terminal = True
        return self._frame(
            "response.completed", {"type": "response.completed", "response": response}
        )

    def failed(self, message: str, code: str) -> bytes:
        """`response.failed` for an error after the stream began (after a `response.created`
        of our own if the upstream sent none)."""
        frames = b""
        if self.response is None:
            self.response = _fill_response({"status": "in_progress"}, self._model)
            frames = self._frame(
                "response.created", {"type": "response.created", "response": self.response}
            )
        response = dict(self.response)
        response["status"] = "failed"
        response["error"] = {"code": code, "message": message}
        self.terminal = True
        return frames + self._frame(
            "response.failed", {"type": "response.failed", "response": response}
        )

    def _frame(self, kind: str, event: dict[str, Any]) -> bytes:
        event["sequence_number"] = self._seq
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _response_error(event: Mapping[str, Any]) -> Any:
    response = event.get("response")
    if isinstance(response, dict) and response.get("error"):
        return response["error"]
    return "The response failed."


# -- embeddings --------------------------------------------------------------------------------


def repair_embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    """OpenAI's list shape around the route's vectors, which pass unchanged."""
    _raise_if_error(body)
    data = body.get("data")
    if not isinstance(data, list):
        raise FalBrokenError("the embeddings answer has no data")
    for position, item in enumerate(data):
        if not isinstance(item, dict) or "embedding" not in item:
            raise FalBrokenError("an embeddings item has no vector")
        item["object"] = "embedding"
        if not _is_int(item.get("index")):
            item["index"] = position
    body["object"] = "list"
    if not isinstance(body.get("model"), str):
        body["model"] = model
    usage = body.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    usage["prompt_tokens"] = _int(usage.get("prompt_tokens"))
    if not _is_int(usage.get("total_tokens")):
        usage["total_tokens"] = usage["prompt_tokens"]
    body["usage"] = usage
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"
