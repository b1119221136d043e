"""Direct calls: ``POST {run}/{app}`` (JSON) and ``POST {run}/{app}/stream`` (SSE)."""

from __future__ import annotations

import math
from typing import Any

import orjson

from .asgi import JSON_TYPE, SSE_HEADERS, DisconnectWatch, SimulatedDrop, send_bytes
from .common import Call, Prepared
from .directives import Directives, units_header
from .state import SimulatorState
from .text import Event, render, stream_events

_ERROR_TYPE = (b"x-fal-error-type", b"runner_server_error")


def _seconds(override: float | None, default_ms: float) -> float:
    return (default_ms if override is None else override) / 1000


async def run(call: Call, state: SimulatorState, p: Prepared) -> None:
    d = p.directives
    latency = _seconds(d.latency_ms, state.config.latency_ms)
    if d.hang is None and latency <= 0:
        await _respond(call, p)
        return
    watch = DisconnectWatch(call.receive)
    try:
        if d.hang is not None:
            await _until_gone(call, state, watch)
        elif await watch.pause(latency):
            call.log_disconnect(state)
        else:
            await _respond(call, p)
    finally:
        watch.stop()


async def _respond(call: Call, p: Prepared) -> None:
    d = p.directives
    error = d.job_error
    if error is not None:
        body = {"detail": error, "error_type": "runner_server_error"}
        await call.json(500, body, [_ERROR_TYPE])
        return
    payload = orjson.dumps(render(p.inp, p.clean_prompt, p.app, d).body())
    if d.drop_at is None:
        headers = [*call.id_header, *units_header(d.billable_units)]
        await send_bytes(call.send, 200, payload, headers, JSON_TYPE)
        return
    # No content-length: chunked framing, so cutting the connection leaves the body unfinished.
    headers = [(b"content-type", b"application/json"), *call.id_header]
    await call.send({"type": "http.response.start", "status": 200, "headers": headers})
    half = payload[: len(payload) // 2]
    await call.send({"type": "http.response.body", "body": half, "more_body": True})
    raise SimulatedDrop


def _sse(event: Event, blank_line: bool = True) -> bytes:
    end = b"\n\n" if blank_line else b"\n"
    return b"event: event\ndata: " + orjson.dumps(event) + end


def _error_event(events: list[Event], index: int, message: str) -> Event:
    """The event replacing ``events[index]``: everything produced so far plus the error."""
    previous = events[index - 1] if index > 0 else {"output": ""}
    out: Event = {"output": previous["output"]}
    if "reasoning" in previous:
        out["reasoning"] = previous["reasoning"]
    out["partial"] = True
    out["error"] = message
    return out


class _Script:
    """Where the stream deviates from the normal sequence (indices clamped to the events)."""

    __slots__ = ("blank_line", "drop_at", "end_at", "error_at", "error_message")

    def __init__(self, d: Directives, total: int) -> None:
        self.end_at = d.end_at
        self.blank_line = not d.no_blank_lines
        self.error_message = d.error_message or "Simulated runner error"
        self.error_at = None if d.error_at is None else min(max(d.error_at, 0), total - 1)
        self.drop_at = None if d.drop_at is None else min(max(d.drop_at, 0), total)


async def stream(call: Call, state: SimulatorState, p: Prepared) -> None:
    d = p.directives
    config = state.config
    watch = DisconnectWatch(call.receive)
    opened = False
    try:
        latency = _seconds(d.latency_ms, config.latency_ms)
        if d.hang == "before_headers" or await watch.pause(latency):
            await _until_gone(call, state, watch)
            return
        headers = [*SSE_HEADERS, *call.id_header, *units_header(d.billable_units)]
        await call.send({"type": "http.response.start", "status": 200, "headers": headers})
        state.open_streams += 1
        opened = True
        if d.hang is not None:
            await _until_gone(call, state, watch)
            return
        count = config.events if d.events is None else d.events
        events = stream_events(render(p.inp, p.clean_prompt, p.app, d), count, d.rewrite_at)
        interval = _seconds(d.interval_ms, config.interval_ms)
        if not await _emit(call, watch, events, _Script(d, len(events)), interval):
            call.log_disconnect(state)
            return
        watch.stop()  # the final empty chunk makes uvicorn report a disconnect
        await call.send({"type": "http.response.body", "body": b""})
    finally:
        watch.stop()
        if opened:
            state.open_streams -= 1


async def _until_gone(call: Call, state: SimulatorState, watch: DisconnectWatch) -> None:
    """Hang until the client disconnects (or the server cancels us at shutdown)."""
    await watch.pause(math.inf)
    call.log_disconnect(state)


async def _emit(
    call: Call, watch: DisconnectWatch, events: list[Event], script: _Script, interval: float
) -> bool:
    """Send the events; False if the client went away. Raises SimulatedDrop for ``drop_at``."""
    send = call.send
    for index, event in enumerate(events):
        if index == script.drop_at:
            raise SimulatedDrop
        if index == script.end_at:
            return True  # a clean end, though the last event sent said `partial: true`
        if (index and await watch.pause(interval)) or watch.disconnected:
            return False
        data: dict[str, Any] = event
        if index == script.error_at:
            data = _error_event(events, index, script.error_message)
        frame = _sse(data, script.blank_line)
        await send({"type": "http.response.body", "body": frame, "more_body": True})
        if index == script.error_at:
            return True
    if script.drop_at == len(events):
        raise SimulatedDrop
    return True
