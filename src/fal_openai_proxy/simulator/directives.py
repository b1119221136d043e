"""Per-request scripted behaviour: ``[[sim {JSON object}]]`` markers inside the message text.

Tests talk to the simulator through the proxy with an OpenAI SDK, so the only channel they
control end to end is the text itself. Markers are read from ``system_prompt`` and then
``prompt``; all objects are merged and later keys win.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

MARKER = "[[sim"
_START = re.compile(r"\[\[sim\s*(?=\{)")
_DECODER = json.JSONDecoder()

Hang = Literal["after_headers", "before_headers"]

# Bounds on what a directive may ask (the simulator is reachable in `--simulate` mode).
MAX_EVENTS = 10_000
MAX_DELAY_MS = 600_000.0
MAX_TEXT = 8 * 1024 * 1024
MAX_SMALL_TEXT = 10_000
MAX_HEADERS = 50
MAX_COUNT = 1_000_000  # fail_times, error_at, drop_at, rewrite_at


@dataclass(frozen=True, slots=True)
class PollFail:
    """`{"op": "status"|"result"|"cancel", "times": N, "status": 503}`; status 0 drops the
    connection instead of answering, and a negative status never answers."""

    op: str
    times: int
    status: int


@dataclass(frozen=True, slots=True)
class Directives:
    """Typed view of the merged directive objects; ``None`` means "not given"."""

    latency_ms: float | None = None
    interval_ms: float | None = None
    events: int | None = None
    queue_ms: float | None = None
    text: str | None = None
    reasoning_text: str | None = None
    status: int | None = None
    body: Any = None
    headers: dict[str, str] | None = None
    ingress: bool = False
    fail_times: int | None = None
    tag: str | None = None
    error_at: int | None = None
    error_message: str | None = None
    completed_error: str | None = None
    drop_at: int | None = None
    rewrite_at: int | None = None
    hang: Hang | None = None
    usage: bool | None = None
    # Queue behaviours (docs/fal-protocol.md §7)
    error_type: str | None = None  # with completed_error: fal's error_type, which sets the status
    final_status: str | None = None  # a terminal status other than COMPLETED (e.g. CANCELLED)
    queue_url_base: str | None = None  # the origin (+ prefix) of the URLs a submit returns
    status_stream: bool = True  # False: the status stream answers 404, so clients poll
    poll_fail: PollFail | None = None  # the first status/result/cancel calls fail
    max_prompt_chars: int | None = None  # a length limit on `prompt` (422 string_too_long)
    # Stream framing faults
    end_at: int | None = None  # the stream ends cleanly before this event (still partial)
    no_blank_lines: bool = False  # events not separated by a blank line
    # fal's OpenAI route (simulator/openrouter.py)
    finish_error: bool = False
    no_done: bool = False
    no_completed: bool = False
    # Video apps (simulator/video.py): add a thumbnail to the output
    thumbnail: bool = False
    # Chat on fal's OpenAI route (simulator/openai_chat.py)
    tool: str | None = None  # the tool to call (when it is in `tools`)
    tool_args: dict[str, Any] | None = None  # its arguments (else built from its schema)
    tool_calls: tuple[dict[str, Any], ...] = ()  # several calls at once: [{"name", "arguments"}]
    interleave: bool = False  # stream the calls' argument fragments mixed
    redacted_reasoning: bool = False  # a `reasoning.encrypted` detail after the signed text
    # fal's `x-fal-billable-units` on the answer (docs/fal-protocol.md §14.2), on any app
    billable_units: float | None = None
    no_cost: bool = False  # a usage without OpenRouter's `cost` (docs/fal-protocol.md §14.4)
    # The text-to-speech file (simulator/media.py): "float" (32-bit float samples), "stereo",
    # "streamed" (sizes left unknown, as a WAV written while it is made) or "not_wav"
    speech_audio: str | None = None
    # Media apps (simulator/media.py): the app's whole output, as its owner chose it
    output: dict[str, Any] | None = None

    @property
    def job_error(self) -> str | None:
        """Error message of a run or queue job scripted to fail, else ``None``."""
        if self.completed_error is not None:
            return self.completed_error
        if self.error_at is not None:
            return self.error_message or "Simulated runner error"
        return None


NO_DIRECTIVES = Directives()


def scan(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Return ``text`` with every well-formed marker removed, and the marker objects in order.

    Malformed markers are left in the text untouched so that mistakes stay visible.
    """
    if MARKER not in text:
        return text, []
    found: list[dict[str, Any]] = []
    kept: list[str] = []
    pos = 0
    for match in _START.finditer(text):
        if match.start() < pos:
            continue
        parsed = _parse_at(text, match.end())
        if parsed is None:
            continue
        obj, end = parsed
        kept.append(text[pos : match.start()])
        found.append(obj)
        pos = end
    kept.append(text[pos:])
    return "".join(kept), found


def _parse_at(text: str, start: int) -> tuple[dict[str, Any], int] | None:
    """Decode one JSON object at ``start`` followed by ``]]``; return it and the end offset."""
    try:
        obj, end = _DECODER.raw_decode(text, start)
    except ValueError:
        return None
    while end < len(text) and text[end].isspace():
        end += 1
    if not isinstance(obj, dict) or not text.startswith("]]", end):
        return None
    return obj, end + 2


def build(objects: list[dict[str, Any]]) -> Directives:
    """Merge marker objects (later keys win) into a typed :class:`Directives`."""
    if not objects:
        return NO_DIRECTIVES
    merged: dict[str, Any] = {}
    for obj in objects:
        merged.update(obj)
    return Directives(
        latency_ms=_number(merged.get("latency_ms")),
        interval_ms=_number(merged.get("interval_ms")),
        events=_int(merged.get("events"), MAX_EVENTS),
        queue_ms=_number(merged.get("queue_ms")),
        text=_str(merged.get("text"), MAX_TEXT),
        reasoning_text=_str(merged.get("reasoning_text"), MAX_TEXT),
        status=_status(merged.get("status")),
        body=merged.get("body"),
        headers=_headers(merged.get("headers")),
        ingress=merged.get("ingress") is True,
        fail_times=_int(merged.get("fail_times")),
        tag=_str(merged.get("tag")),
        error_at=_int(merged.get("error_at")),
        error_message=_str(merged.get("error_message")),
        completed_error=_str(merged.get("completed_error")),
        drop_at=_int(merged.get("drop_at")),
        rewrite_at=_int(merged.get("rewrite_at")),
        hang=_hang(merged.get("hang")),
        usage=merged["usage"] if isinstance(merged.get("usage"), bool) else None,
        error_type=_str(merged.get("error_type")),
        final_status=_str(merged.get("final_status")),
        queue_url_base=_str(merged.get("queue_url_base")),
        status_stream=merged.get("status_stream") is not False,
        poll_fail=_poll_fail(merged.get("poll_fail")),
        max_prompt_chars=_int(merged.get("max_prompt_chars")),
        end_at=_int(merged.get("end_at")),
        no_blank_lines=merged.get("no_blank_lines") is True,
        finish_error=merged.get("finish_error") is True,
        no_done=merged.get("no_done") is True,
        no_completed=merged.get("no_completed") is True,
        thumbnail=merged.get("thumbnail") is True,
        tool=_str(merged.get("tool")),
        tool_args=merged["tool_args"] if isinstance(merged.get("tool_args"), dict) else None,
        tool_calls=_tool_calls(merged.get("tool_calls")),
        interleave=merged.get("interleave") is True,
        redacted_reasoning=merged.get("redacted_reasoning") is True,
        billable_units=_units(merged.get("billable_units")),
        no_cost=merged.get("no_cost") is True,
        speech_audio=_str(merged.get("speech_audio")),
        output=merged["output"] if isinstance(merged.get("output"), dict) else None,
    )


def _tool_calls(value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        c for c in value[:MAX_HEADERS] if isinstance(c, dict) and isinstance(c.get("name"), str)
    )


def _poll_fail(value: Any) -> PollFail | None:
    if not isinstance(value, dict):
        return None
    op, times, status = value.get("op"), _int(value.get("times")), _int(value.get("status"))
    if op not in ("status", "result", "cancel"):
        return None
    return PollFail(op, 1 if times is None else times, 503 if status is None else status)


def _number(value: Any) -> float | None:
    """Milliseconds, clamped to 0..MAX_DELAY_MS (NaN is dropped)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return min(max(0.0, float(value)), MAX_DELAY_MS)


def _units(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1e9:
        return None
    return float(value)


def units_header(units: float | None) -> list[tuple[bytes, bytes]]:
    """The `x-fal-billable-units` header for `units` (none for None)."""
    if units is None:
        return []
    text = str(int(units)) if units == int(units) else repr(units)
    return [(b"x-fal-billable-units", text.encode())]


def _int(value: Any, limit: int = MAX_COUNT) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return max(-limit, min(value, limit))


def _status(value: Any) -> int | None:
    status = _int(value)
    return status if status is not None and 100 <= status <= 599 else None


def _str(value: Any, limit: int = MAX_SMALL_TEXT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _headers(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    # JSON booleans must read like HTTP header values ("false", not "False").
    items = list(value.items())[:MAX_HEADERS]
    return {str(k)[:200]: _header_value(v)[:MAX_SMALL_TEXT] for k, v in items}


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _hang(value: Any) -> Hang | None:
    if value == "before_headers":
        return "before_headers"
    if value is True or value == "after_headers":
        return "after_headers"
    return None
