"""Chat stream deltas -> Anthropic's stream events (the anthropic SDK's
`types/raw_message_stream_event.py` and `lib/streaming/_messages.py`, `accumulate_event`).

Anthropic's framing: `message_start`; per block `content_block_start`, its deltas,
`content_block_stop`, one block open at a time and indexes rising from 0; then
`message_delta` (stop reason, usage) and `message_stop`. The upstream may interleave: two
tool calls' argument fragments mixed, text after a call began. Each tool call is one block
whose fragments are passed on in order; content for another block waits (in order) until
the open one may close: a text or thinking block as soon as anything else comes, a tool
call once its arguments so far are a whole JSON value (no later fragment could extend it),
else at the end. An upstream that sends one call after the other streams every fragment at
once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from ..anthropic.sse import event
from ..fal.decode import loads_object
from ..fal.errors import FalBrokenError
from .anthropic_reasoning import seal
from .anthropic_response import new_message_id, new_tool_use_id, stop_reason, usage
from .cost import Measure, reported_cost
from .openrouter import raise_if_failed
from .stream import StreamTranslator

log = logging.getLogger(__name__)
NEW, LIVE, CLOSED = 0, 1, 2
TEXT, THINKING, TOOL_USE, REDACTED = "text", "thinking", "tool_use", "redacted_thinking"
_DELTA_TYPES = {
    "text": ("text_delta", "text"),
    "thinking": ("thinking_delta", "thinking"),
    "signature": ("signature_delta", "signature"),
    "json": ("input_json_delta", "partial_json"),
}


class _Block:
    __slots__ = ("args", "data", "kind", "name", "pending", "state", "tool_id")

    def __init__(self, kind: str, tool_id: str = "", name: str = "") -> None:
        self.kind = kind
        self.state = NEW
        self.pending: list[tuple[str, str]] = []  # deltas held until the block opens
        self.args = ""  # a tool call's arguments so far
        self.data = ""  # a redacted block's data
        self.tool_id = tool_id
        self.name = name


class MessageEvents:
    """The events of one streamed message; every method returns the frames to send now."""

    __slots__ = ("_blocks", "_index", "_keyed", "_live", "message_id", "model", "started")

    def __init__(self, model: str, message_id: str | None = None) -> None:
        self.model = model
        self.message_id = message_id or new_message_id()
        self.started = False
        self._blocks: list[_Block] = []
        self._keyed: dict[tuple[str, Any], _Block] = {}
        self._live: _Block | None = None
        self._index = -1  # of the block opened last

    def start(self, input_tokens: int = 0) -> bytes:
        self.started = True
        message: dict[str, Any] = {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        }  # fmt: skip
        return event({"type": "message_start", "message": message})

    def text(self, text: str) -> bytes:
        return self._put(self._block(TEXT, None), "text", text)

    def thinking(self, text: str, key: Any = None) -> bytes:
        return self._put(self._block(THINKING, key), "thinking", text)

    def signature(self, signature: str, key: Any = None) -> bytes:
        block = self._keyed.get((THINKING, key))
        if block is None or block.state == CLOSED:
            if block is not None:
                log.warning("a reasoning signature came after its block closed; dropped")
                return b""
            block = self._block(THINKING, key)
        return self._put(block, "signature", signature)

    def redacted(self, data: str, key: Any = None) -> bytes:
        block = self._keyed.get((REDACTED, key))
        if block is not None and block.state == NEW:
            block.data += data
            return b""
        block = self._new(REDACTED, key)
        block.data = data
        return self._advance()

    def has_tool(self, key: Any) -> bool:
        return (TOOL_USE, key) in self._keyed

    def tool(self, key: Any, tool_id: str, name: str) -> bytes:
        self._new(TOOL_USE, key, tool_id, name)
        return self._advance()

    def tool_args(self, key: Any, fragment: str) -> bytes:
        block = self._keyed.get((TOOL_USE, key))
        if block is None:
            block = self._new(TOOL_USE, key, new_tool_use_id(), "")
        elif block.state == CLOSED:
            if fragment.strip():
                log.warning("tool call arguments came after the call was complete; dropped")
            return b""
        block.args += fragment
        return self._put(block, "json", fragment)

    def finish(self, reason: tuple[str, str | None], usage: Mapping[str, int]) -> bytes:
        """Close every block (those still waiting in order), then message_delta and stop."""
        frames = b""
        if self._live is not None:
            frames += self._stop(self._live)
        for block in self._blocks:
            if block.state == NEW:
                frames += self._begin(block)
                if self._live is not None:
                    frames += self._stop(self._live)
        delta = {"stop_reason": reason[0], "stop_sequence": reason[1]}
        frames += event({"type": "message_delta", "delta": delta, "usage": dict(usage)})
        return frames + event({"type": "message_stop"})

    # -- blocks ------------------------------------------------------------------------------

    def _block(self, kind: str, key: Any) -> _Block:
        block = self._keyed.get((kind, key))
        if block is None or block.state == CLOSED:
            block = self._new(kind, key)
        return block

    def _new(self, kind: str, key: Any, tool_id: str = "", name: str = "") -> _Block:
        block = _Block(kind, tool_id, name)
        self._blocks.append(block)
        self._keyed[(kind, key)] = block
        return block

    def _put(self, block: _Block, kind: str, value: str) -> bytes:
        if block is self._live:
            frames = self._delta(kind, value)
            return frames + self._advance() if self._waiting() else frames
        block.pending.append((kind, value))
        return self._advance()

    def _waiting(self) -> bool:
        return any(block.state == NEW for block in self._blocks)

    def _advance(self) -> bytes:
        """Open the blocks that wait, in order, while the open one may close."""
        frames = b""
        while True:
            waiting = next((b for b in self._blocks if b.state == NEW), None)
            if waiting is None:
                return frames
            if self._live is not None:
                if not _closable(self._live):
                    return frames
                frames += self._stop(self._live)
            frames += self._begin(waiting)

    def _begin(self, block: _Block) -> bytes:
        self._index += 1
        start: dict[str, Any]
        if block.kind == REDACTED:
            start = {"type": REDACTED, "data": block.data}
        elif block.kind == TOOL_USE:
            start = {"type": TOOL_USE, "id": block.tool_id, "name": block.name, "input": {}}
        elif block.kind == THINKING:
            start = {"type": THINKING, "thinking": "", "signature": ""}
        else:
            start = {"type": TEXT, "text": ""}
        frames = event(
            {"type": "content_block_start", "index": self._index, "content_block": start}
        )
        self._live = block
        block.state = LIVE
        for kind, value in block.pending:
            frames += self._delta(kind, value)
        block.pending = []
        if block.kind == REDACTED:
            frames += self._stop(block)
        return frames

    def _stop(self, block: _Block) -> bytes:
        block.state = CLOSED
        self._live = None
        return event({"type": "content_block_stop", "index": self._index})

    def _delta(self, kind: str, value: str) -> bytes:
        delta_type, field = _DELTA_TYPES[kind]
        return event(
            {"type": "content_block_delta", "index": self._index,
             "delta": {"type": delta_type, field: value}}
        )  # fmt: skip


def _closable(block: _Block) -> bool:
    if block.kind != TOOL_USE:
        return True
    if not block.args.strip():
        return False
    try:
        orjson.loads(block.args)
    except orjson.JSONDecodeError:
        return False
    return True


class ChatStreamToMessages:
    """fal's OpenAI route's chat chunks -> Anthropic's events (the `Repair` protocol of
    services/openrouter.py: `feed`, `end`, `over`). Upstream errors are raised."""

    __slots__ = ("_called", "_choice", "_finish", "_stops", "_usage", "events", "over")

    def __init__(self, model: str, stops: list[str]) -> None:
        self.events = MessageEvents(model)
        self._stops = stops
        self._finish: Any = None
        self._choice: Mapping[str, Any] = {}
        self._usage: Any = None
        self._called = False
        self.over = False

    def head(self) -> bytes:
        """message_start, sent before the upstream's first chunk."""
        return self.events.start()

    @property
    def used(self) -> Measure:
        """The tokens the upstream's usage reports (for the request's cost)."""
        usage = self._usage if isinstance(self._usage, dict) else {}
        tokens = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
        return Measure(*(t if isinstance(t, int) and not isinstance(t, bool) else None
                         for t in tokens))  # fmt: skip

    @property
    def reported(self) -> float | None:
        """OpenRouter's own cost of the request (`usage.cost`), if it sent one."""
        return reported_cost(self._usage)

    def feed(self, data: bytes) -> bytes:
        if data == b"[DONE]":
            return self.end()
        chunk = loads_object(data)
        raise_if_failed(chunk)
        frames = b"" if self.events.started else self.events.start()
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                frames += self._choice_delta(choice)
        return frames

    def end(self) -> bytes:
        if self._finish is None:
            raise FalBrokenError("the upstream ended the stream before the answer was complete")
        self.over = True
        frames = b"" if self.events.started else self.events.start()
        reason = stop_reason(self._finish, self._choice, self._stops, self._called)
        return frames + self.events.finish(reason, usage(self._usage))

    def _choice_delta(self, choice: Mapping[str, Any]) -> bytes:
        delta = choice.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        events = self.events
        frames = b""
        details = delta.get("reasoning_details")
        if isinstance(details, list) and details:
            for detail in details:
                if isinstance(detail, Mapping):
                    frames += self._detail(detail)
        elif isinstance(delta.get("reasoning"), str) and delta["reasoning"]:
            frames += events.thinking(delta["reasoning"])
        for field in ("content", "refusal"):
            text = delta.get(field)
            if isinstance(text, str) and text:
                frames += events.text(text)
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, Mapping):
                frames += self._call(call, position)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
            self._choice = choice
        return frames

    def _detail(self, detail: Mapping[str, Any]) -> bytes:
        kind, key = detail.get("type"), detail.get("index")
        events = self.events
        if kind == "reasoning.encrypted" and isinstance(detail.get("data"), str):
            return events.redacted(seal(detail["data"], dict(detail)), key)
        text = detail.get("summary") if kind == "reasoning.summary" else detail.get("text")
        frames = b""
        if kind in ("reasoning.text", "reasoning.summary") and isinstance(text, str) and text:
            frames += events.thinking(text, key)
        signature = detail.get("signature")
        if kind == "reasoning.text" and isinstance(signature, str) and signature:
            frames += events.signature(seal(signature, dict(detail)), key)
        return frames

    def _call(self, call: Mapping[str, Any], position: int) -> bytes:
        self._called = True
        key = call.get("index", position)
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        frames = b""
        if not self.events.has_tool(key):
            call_id, name = call.get("id"), function.get("name")
            frames += self.events.tool(
                key,
                call_id if isinstance(call_id, str) and call_id else new_tool_use_id(),
                name if isinstance(name, str) else "",
            )
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()
        if isinstance(arguments, str) and arguments:
            frames += self.events.tool_args(key, arguments)
        return frames


class _Sink:
    """The chat stream translator's encoder (`FrameEncoder`), writing Anthropic events
    instead of chunks."""

    __slots__ = ("events",)
    include_usage = False

    def __init__(self, events: MessageEvents) -> None:
        self.events = events

    def role(self) -> bytes:
        return b""

    def content(self, text: str) -> bytes:
        return self.events.text(text)

    def reasoning(self, text: str) -> bytes:
        return self.events.thinking(text)

    def finish(self, reason: str = "stop") -> bytes:
        return b""

    def usage(self, usage: dict[str, int] | None) -> bytes:
        return b""


class PromptStreamToMessages:
    """fal's prompt-route events (cumulative `output`, `reasoning`) -> Anthropic's events,
    through the chat stream's own translator (stop sequences, held-back text)."""

    __slots__ = ("events", "translator")

    def __init__(self, model: str, stops: list[str]) -> None:
        self.events = MessageEvents(model)
        self.translator = StreamTranslator(_Sink(self.events), stops=stops)

    def head(self) -> bytes:
        return self.events.start()

    def feed(self, fal_event: Mapping[str, Any]) -> bytes:
        return self.translator.feed(fal_event)

    @property
    def stopped(self) -> bool:
        return self.translator.stopped

    def end(self) -> bytes:
        translator = self.translator
        frames = translator.flush()
        stop = translator.stop_found
        reason = ("stop_sequence", stop) if stop is not None else ("end_turn", None)
        return frames + self.events.finish(reason, usage(translator.usage))
