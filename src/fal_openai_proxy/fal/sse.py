"""An incremental Server-Sent Events decoder (WHATWG rules for the fields fal uses).

Fed raw bytes as they arrive, it returns the `data` of each complete event. Event names, ids,
retry fields and comments are ignored, as fal's own clients ignore them.

One tolerance beyond WHATWG: events not separated by a blank line. A `data:` line that holds
a whole JSON object is one event, since fal's events are single JSON objects
(docs/fal-protocol.md §6). The check costs nothing on well-formed streams: it runs only when a data
line follows another without a blank line, or when a chunk ends inside an event.
"""

from __future__ import annotations

import orjson


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


class SSEDecoder:
    __slots__ = ("_data", "_pending")

    def __init__(self) -> None:
        self._pending = b""  # an incomplete last line
        self._data: list[bytes] = []  # data lines of the event being read

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._pending + chunk if self._pending else chunk
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF: keep it for later.
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer[:-1] if keep_cr else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines = buffer.split(b"\n")
            self._pending = lines.pop() + (b"\r" if keep_cr else b"")
        else:
            lines = buffer.split(b"\n")
            self._pending = lines.pop()
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(b"\n".join(data))
                    data = self._data = []
            elif line.startswith(b"data:"):
                if data and _whole_object(data):
                    events.append(data[0])  # the previous event lacked its blank line
                    data = self._data = []
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            elif line == b"data":
                data.append(b"")
        if data and not self._pending and _whole_object(data):
            # The chunk ended after a whole event: deliver it now rather than with the next.
            events.append(data[0])
            self._data = []
        return events

    def close(self) -> list[bytes]:
        """Events left when the body ends without a final blank line."""
        events = self.feed(b"\n\n") if (self._pending or self._data) else []
        self._pending = b""
        return events
