"""One HTTP/1.1 response at a time, parsed by httptools (the parser uvicorn uses), within
limits on what the upstream may send.

A media URL that fal's answer names may point at any server (`fal/media_fetch.py` guards
where it may point), and no server may hold a worker or memory with what it sends:
- the response head (status lines and header lines, 1xx answers included) is at most
  MAX_HEAD_BYTES and MAX_HEADER_LINES; headers repeated are joined once, at its end (linear
  time, where joining each repeat as it came was quadratic);
- the trailers of a chunked body count against MAX_HEAD_BYTES too (httptools joins a header
  value piece by piece, so an endless one costs quadratic time);
- only the headers fal's protocol uses are kept: a stream holds them for its whole life.

`Connection` (connection.py) is this class plus a transport; the hooks `_wake`, `_fail` and
`_pause_reading` are its.
"""

from __future__ import annotations

import httptools

from ..errors import FalBrokenError

# Above this many unread body bytes the socket stops being read (back-pressure).
HIGH_WATER = 256 * 1024
# The whole response head, 1xx answers and the trailers included. fal's heads are well under
# 2 KiB; nginx's default buffer for an upstream head is 4-8 KiB.
MAX_HEAD_BYTES = 64 * 1024
# Header lines of one response head (kept or not).
MAX_HEADER_LINES = 256
# Response headers kept besides every `x-fal-*` one (docs/fal-protocol.md §2); the length
# and `location` for media files (fal/media_fetch.py).
KEPT_HEADERS = frozenset(
    {"content-type", "retry-after", "retry-after-ms", "content-length", "location"}
)
# Headers that delimit a body; without them it ends when the connection closes (RFC 9112 §6.3).
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


class _HeadRefused(Exception):
    """Raised inside an httptools callback to stop the parse at once."""


def parse_error(exc: httptools.HttpParserError) -> FalBrokenError:
    cause = exc.__context__
    if isinstance(cause, _HeadRefused):  # raised from a callback, wrapped by httptools
        return FalBrokenError(str(cause))
    return FalBrokenError(f"unreadable response: {exc}")


class ResponseParser:
    """The parse state of the response being read, and httptools' callbacks."""

    __slots__ = (
        "buffered", "chunk_empty", "chunks", "complete", "framed", "head_bytes", "header_lines",
        "headers", "headers_done", "informational", "keep_alive", "keep_all", "lost", "parser",
        "repeated", "status",
    )  # fmt: skip

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.repeated: dict[str, list[str]] | None = None  # headers seen more than once
        self.chunks: list[bytes] = []  # usually 0 or 1 items: a list is far smaller than a deque
        self.buffered = 0
        self.head_bytes = 0  # head and trailer bytes fed so far
        self.header_lines = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.framed = False  # Content-Length or Transfer-Encoding seen
        self.informational = False  # inside a 1xx answer
        self.chunk_empty = False  # a chunk header came and no body since: maybe the trailers
        self.keep_all = False  # keep every response header (the fal proxy relays them)
        self.lost: BaseException | None = None

    def reset(self, keep_all: bool = False) -> None:
        """Ready for the next response on the same connection. `keep_all`: keep every
        response header, not only those fal's protocol reads."""
        self.keep_all = keep_all
        self.status, self.headers, self.buffered = 0, {}, 0
        self.head_bytes = self.header_lines = 0
        self.headers_done = self.complete = self.keep_alive = self.framed = False
        self.chunk_empty = False
        self.chunks.clear()

    def feed(self, data: bytes) -> None:
        """Parse `data`; a broken or oversized response fails the connection."""
        try:
            if self.headers_done and not self.chunk_empty:
                self.parser.feed_data(data)  # the body: nothing to count
            elif not self.headers_done:
                self._feed_head(data)
            else:
                self._feed_maybe_trailers(data)
        except _HeadRefused as exc:
            self._fail(FalBrokenError(str(exc)))
        except httptools.HttpParserError as exc:
            self._fail(parse_error(exc))

    def _feed_head(self, data: bytes) -> None:
        room = MAX_HEAD_BYTES - self.head_bytes
        if len(data) <= room:
            self.head_bytes += len(data)
            self.parser.feed_data(data)
            return
        # Feed only what the cap allows; if the head ended within it, the rest is body.
        self.head_bytes = MAX_HEAD_BYTES
        if room > 0:
            self.parser.feed_data(data[:room])
        if not self.headers_done:
            raise _HeadRefused(f"the response head is over {MAX_HEAD_BYTES} bytes")
        if self.lost is None and not self.complete:
            self.feed(data[room:])

    def _feed_maybe_trailers(self, data: bytes) -> None:
        # After a chunk header, bytes that yield no body are the last chunk's trailers.
        before = self.buffered
        self.parser.feed_data(data)
        if self.chunk_empty and self.buffered == before and not self.complete:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                raise _HeadRefused(
                    f"the response head and trailers are over {MAX_HEAD_BYTES} bytes"
                )

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_lines += 1
        if self.header_lines > MAX_HEADER_LINES:
            raise _HeadRefused(f"the response has over {MAX_HEADER_LINES} header lines")
        if self.headers_done:
            return  # a trailer: nothing of fal's protocol is there
        key = name.decode("latin-1").lower()
        if key in _FRAMING_HEADERS:
            self.framed = True
        if not self.keep_all and key not in KEPT_HEADERS and not key.startswith("x-fal-"):
            return  # held for a stream's whole life, so keep only what fal's protocol uses
        text = value.decode("latin-1")
        if key not in self.headers:
            self.headers[key] = text
            return
        if self.repeated is None:
            self.repeated = {}
        # Joined once at the end of the head: joining at each repeat was quadratic.
        self.repeated.setdefault(key, [self.headers[key]]).append(text)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.repeated is not None:
            for key, values in self.repeated.items():
                self.headers[key] = ", ".join(values)
            self.repeated = None
        if 100 <= self.status < 200 and self.status != 101:
            # 100 Continue, 103 Early Hints: the final answer follows on the same connection.
            self.informational = True
            self.headers = {}
            self.framed = False
            return
        self.headers_done = True
        self._wake()

    def on_chunk_header(self) -> None:
        self.chunk_empty = True

    def on_body(self, body: bytes) -> None:
        self.chunk_empty = False
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER:
            self._pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        # Only meaningful now: the parser forgets it once the message is over.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True
        self.chunk_empty = False
        self._wake()

    # hooks for the connection

    def _wake(self) -> None:
        raise NotImplementedError

    def _fail(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _pause_reading(self) -> None:
        raise NotImplementedError
