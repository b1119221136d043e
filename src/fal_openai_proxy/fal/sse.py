"""An incremental Server-Sent Events decoder (WHATWG rules for the fields fal uses).

Fed raw bytes as they arrive, it returns the `data` of each complete event. Event names, ids,
retry fields and comments are ignored, as fal's own clients ignore them.
"""

from __future__ import annotations


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
        for line in lines:
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            elif line == b"data":
                self._data.append(b"")
        return events

    def close(self) -> list[bytes]:
        """Events left when the body ends without a final blank line."""
        events = self.feed(b"\n\n") if (self._pending or self._data) else []
        self._pending = b""
        return events
