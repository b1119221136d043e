"""Pure repairs of the Responses API answers of fal's OpenAI route (OpenRouter's), so that
every body and event validates against OpenAI's schemas (docs/fal-protocol.md §9.5)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from ..fal.decode import loads_object
from ..fal.errors import FalBrokenError
from .cost import Measure, reported_cost, strip_accounting
from .openrouter import as_int, error_from, is_int, new_id, raise_if_error

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
        raise_if_error(body)
    if body.get("status") == "failed":
        raise error_from(body.get("error") or "The response failed.")
    return _fill_response(body, model)


def _fill_response(response: dict[str, Any], model: str) -> dict[str, Any]:
    if not isinstance(response.get("id"), str) or not response["id"]:
        response["id"] = new_id("resp")
    response["object"] = "response"
    if not is_int(response.get("created_at")):
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
        input_tokens = as_int(usage.get("input_tokens"))
        output_tokens = as_int(usage.get("output_tokens"))
        usage["input_tokens"], usage["output_tokens"] = input_tokens, output_tokens
        if not is_int(usage.get("total_tokens")):
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
    `keep` (docs/fal-protocol.md §14.4)."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return Measure(), None
    used = Measure(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
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
            raise_if_error(event)
            return b""
        if kind == "error" or kind == "response.error":
            raise error_from(event.get("error") or event)
        if self.response is None and kind != "response.created":
            if kind == "response.failed":
                raise error_from(_response_error(event))
            return b""  # e.g. `response.debug` before `response.created`: the SDK refuses it
        if kind in _LIFECYCLE_EVENTS:
            response = event.get("response")
            if not isinstance(response, dict):
                response = dict(self.response or {})
            if kind == "response.failed":
                raise error_from(_response_error(event))
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
