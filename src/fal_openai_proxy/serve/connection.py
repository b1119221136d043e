"""uvicorn's httptools protocol with the limits that must hold before any ASGI code runs.

httptools buffers a header until it is complete and uvicorn sets no limit on its size, nor
on the time a client takes to send a request head; so a client could hold a connection and
any amount of memory without ever reaching the application. Here, per connection:
- at most `max_header_bytes` of request line and headers (431, then close);
- at most `header_timeout` seconds from the first byte of a request head (or from opening)
  to its end (then close);
- at most `max_connections` open at once per process (503, then close).
The request body's size and time are the middleware's (GuardMiddleware).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from functools import partial
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..openai.sse import ABORT_KEY

log = logging.getLogger(__name__)


def _canned(status: bytes, message: str, code: str, extra: bytes = b"") -> bytes:
    body = orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    )
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"connection: close\r\n\r\n"
    ) + body


_TOO_LARGE = _canned(
    b"431 Request Header Fields Too Large",
    "The request line and headers are too large (see MAX_HEADER_BYTES).",
    "request_header_fields_too_large",
)
_BUSY = _canned(
    b"503 Service Unavailable",
    "The server has too many open connections (see MAX_CONNECTIONS); retry shortly.",
    "too_many_connections",
    b"retry-after: 1\r\n",
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Configured by subclassing: see `limited_protocol`."""

    max_header_bytes = 64 * 1024
    header_timeout = 10.0
    max_connections = 2048

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False  # answered and closing: read nothing more
        self._registered = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refused = True
            self.transport = transport
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._registered = True
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._registered:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_head:
            super().data_received(data)
            return
        if self._head_timer is None:
            self._arm()
        room = self.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Feed only what the cap allows; if the head ended within it, the rest is body.
        self._head_bytes = self.max_header_bytes
        if room > 0:
            super().data_received(data[:room])
        if self._in_head:
            self._refuse(_TOO_LARGE)
        elif not self.transport.is_closing():
            super().data_received(data[room:])

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        # A stream whose client stops reading is dropped at once (not after its buffer
        # drains, as transport.close() would wait). Through a weak reference: a bound
        # method in the scope would tie scope, protocol and transport in a cycle, left to
        # the garbage collector's full passes instead of being freed at once.
        self.scope[ABORT_KEY] = partial(_abort, weakref.ref(self))  # type: ignore[literal-required]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            log.info("closing a connection whose request head took over %g s", self.header_timeout)
            self.transport.close()

    def _refuse(self, response: bytes) -> None:
        self._refused = True
        self._disarm()
        log.info("refusing a request head over %d bytes", self.max_header_bytes)
        self.transport.write(response)
        self.transport.close()


def _abort(protocol: weakref.ref[LimitedHttpToolsProtocol]) -> None:
    alive = protocol()
    if alive is not None and alive.transport is not None:
        alive.transport.abort()


def limited_protocol(
    *, max_header_bytes: int, header_timeout: float, max_connections: int
) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for uvicorn's `http=` with these limits."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "header_timeout": header_timeout,
            "max_connections": max_connections,
        },
    )
