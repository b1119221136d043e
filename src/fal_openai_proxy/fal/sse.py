"""An incremental Server-Sent Events decoder (WHATWG rules for the fields fal uses).

Fed raw bytes as they arrive, it returns the `data` of each complete event. Event names, ids,
retry fields and comments are ignored, as fal's own clients ignore them.

One tolerance beyond WHATWG: events not separated by a blank line. A `data:` line that holds
a whole JSON object is one event, since fal's events are single JSON objects
(docs/fal-protocol.md §6). The check costs nothing on well-formed streams: it runs only when a data
line follows another without a blank line, or when a chunk ends inside an event.

Bounded: an unfinished line, and the data of one event, are at most `max_event_bytes`
(MAX_UPSTREAM_BODY_BYTES); beyond, FalResponseTooLarge ends the stream (the client gets an
error event). An upstream stream with no newline once grew a process to 2.6 GB. The pieces
of an unfinished line are joined once, when it ends (joining them as they came was quadratic).
"""

from __future__ import annotations

import orjson

from .errors import FalResponseTooLarge

# The default bound on a line and on an event (the MAX_UPSTREAM_BODY_BYTES default).
MAX_EVENT_BYTES = 32 * 1024 * 1024


def _whole_object(data: list[bytes]) -> bool:
    if len(data) != 1:
        return False
    line = data[0].strip()
    if not (line.startswith(b"{") and line.endswith(b"}")):
        return False
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def too_large(limit: int) -> FalResponseTooLarge:
    return FalResponseTooLarge(f"a stream line or event is over {limit} bytes")


class LineBuffer:
    """Splits a byte stream into lines ended by CR, LF or CRLF, keeping an unfinished last
    line (at most `limit` bytes) for the next chunk."""

    __slots__ = ("_limit", "_pending", "_pending_bytes")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending: list[bytes] = []  # the pieces of the unfinished last line
        self._pending_bytes = 0

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def lines(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk and b"\r" not in chunk:
            if chunk:
                self._pending.append(chunk)
                self._pending_bytes += len(chunk)
                if self._pending_bytes > self._limit:
                    raise too_large(self._limit)
            return []
        buffer = b"".join((*self._pending, chunk)) if self._pending else chunk
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF: keep it for later.
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer[:-1] if keep_cr else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines = buffer.split(b"\n")
            last = lines.pop() + (b"\r" if keep_cr else b"")
        else:
            lines = buffer.split(b"\n")
            last = lines.pop()
        self._pending = [last] if last else []
        self._pending_bytes = len(last)
        if self._pending_bytes > self._limit:
            raise too_large(self._limit)
        return lines

    def clear(self) -> None:
        self._pending = []
        self._pending_bytes = 0


class SSEDecoder:
    __slots__ = ("_data", "_data_bytes", "_limit", "_lines")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._lines = LineBuffer(max_event_bytes)
        self._limit = max_event_bytes
        self._data: list[bytes] = []  # data lines of the event being read
        self._data_bytes = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = self._lines.lines(chunk)
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(b"\n".join(data))
                    data = self._data = []
                    self._data_bytes = 0
            elif line.startswith(b"data:"):
                if data and _whole_object(data):
                    events.append(data[0])  # the previous event lacked its blank line
                    data = self._data = []
                    self._data_bytes = 0
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
                self._data_bytes += len(value)
                if self._data_bytes > self._limit:
                    raise too_large(self._limit)
            elif line == b"data":
                data.append(b"")
        if data and not self._lines.pending and _whole_object(data):
            # The chunk ended after a whole event: deliver it now rather than with the next.
            events.append(data[0])
            self._data = []
            self._data_bytes = 0
        return events

    def close(self) -> list[bytes]:
        """Events left when the body ends without a final blank line."""
        events = self.feed(b"\n\n") if (self._lines.pending or self._data) else []
        self._lines.clear()
        return events
