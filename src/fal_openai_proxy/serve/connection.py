"""uvicorn's httptools protocol with the limits that must hold before any ASGI code runs.

httptools buffers a header until it is complete and uvicorn sets no limit on its size, nor
on the time a client takes to send a request head; so a client could hold a connection and
any amount of memory without ever reaching the application. Here, per connection:
- at most `max_header_bytes` of request line and headers (431, then close);
- at most `header_timeout` seconds from the first byte of a request head (or from opening)
  to its end (then close);
- at most `max_connections` open at once per process (503, then close);
- a request body's trailers count against `max_header_bytes` (httptools joins a header value
  piece by piece: an endless trailer cost quadratic time), then close;
- a request body not complete `body_timeout` (+ a grace for the middleware's own 408) after
  its head: close, whether or not the application reads it;
- an answer given before the request body was read: if it says `Connection: close` (the
  middleware's refusals: a 401, a 413), the rest of the body is not parsed but discarded, the
  write side is shut (FIN after the answer, so that a client still sending reads it: a
  "lingering close", RFC 9112 §9.6), and the connection is closed after LINGER seconds or
  `max_body_bytes` discarded; if it keeps the connection alive (a handler that answered
  without reading), the body is still parsed and discarded so that the connection serves the
  next request, but only for LINGER seconds and `max_body_bytes`, then it is closed as above.
  Before, a body trickled at 1 byte/s held such a connection for ever.
The request body's size and time, when the application reads it, are the middleware's
(GuardMiddleware: 413, 408).
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


# Seconds a connection is kept, after an early answer, for the client to read it.
LINGER = 2.0
# After BODY_TIMEOUT, the middleware answers 408 to an application reading the body; the
# protocol closes the connection this much later if the body is still not complete.
BODY_GRACE = 2.0


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Configured by subclassing: see `limited_protocol`."""

    max_header_bytes = 64 * 1024
    header_timeout = 10.0
    max_connections = 2048
    body_timeout = 30.0
    max_body_bytes = 20 * 1024 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True  # False from a head's end to its body's end
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_bytes = 0
        self._trailer_bytes = 0
        self._chunk_empty = False  # a chunk header came and no body since: maybe the trailers
        self._lingering = False  # answered early and closing: discarding the rest, then closing
        self._draining = False  # answered early, kept alive: the rest of the body is skipped
        self._discarded = 0
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
        self._disarm_body()
        if self._registered:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._lingering:
            self._discard(data)
            return
        if not self._in_head:
            self._feed_body(data)
            return
        if self._head_timer is None:
            self._arm()
        room = self.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
        else:
            # Feed only what the cap allows; if the head ended within it, the rest is body.
            self._head_bytes = self.max_header_bytes
            if room > 0:
                super().data_received(data[:room])
            if self._in_head:
                self._refuse(_TOO_LARGE)
                return
            if not self.transport.is_closing():
                self._feed_body(data[room:])
        if not self._in_head and self._body_timer is None:
            # A body still to come (most arrive with their head, and need none of this).
            self._body_timer = self.loop.call_later(
                self.body_timeout + BODY_GRACE, self._body_timed_out
            )
            if self.cycle is not None:
                self.cycle.transport = _LingerOnClose(self.transport, weakref.ref(self))

    def _feed_body(self, data: bytes) -> None:
        if not self._chunk_empty:
            super().data_received(data)
            return
        # After a chunk header, bytes that yield no body are the last chunk's trailers.
        before = self._body_bytes
        super().data_received(data)
        if self._chunk_empty and self._body_bytes == before and not self._in_head:
            self._trailer_bytes += len(data)
            if self._trailer_bytes > self.max_header_bytes:
                log.info(
                    "closing a connection whose trailers are over %d bytes", self.max_header_bytes
                )
                self._refused = True
                self.transport.close()

    def on_chunk_header(self) -> None:
        self._chunk_empty = True

    def on_body(self, body: bytes) -> None:
        self._chunk_empty = False
        self._body_bytes += len(body)
        if self._draining:
            self._discarded += len(body)
            if self._discarded > self.max_body_bytes:
                self._linger()
            return  # uvicorn skips it too: its answer is complete
        super().on_body(body)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if (
            not self._in_head
            and cycle is not None
            and cycle.response_complete
            and not self.transport.is_closing()
            and not self._lingering
        ):
            self._drain()

    def _drain(self) -> None:
        """An answer kept alive went out before its request's body was read: skip the rest
        of the body, for LINGER seconds and `max_body_bytes` at most."""
        self._draining = True
        self._discarded = 0
        self._disarm_body()
        self._body_timer = self.loop.call_later(min(LINGER, self.body_timeout), self._linger)

    def _linger(self) -> None:
        """Close after an answer the request's body did not wait for: discard the rest, shut
        the write side, then close (see the module's docstring)."""
        if self._lingering:
            return
        self._lingering = True
        self._draining = False
        self._disarm_body()
        self._body_timer = self.loop.call_later(min(LINGER, self.body_timeout), self._close)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # after the answer: the client reads it, then FIN

    def _discard(self, data: bytes) -> None:
        self._discarded += len(data)
        if self._discarded > self.max_body_bytes:
            self._close()

    def _close(self) -> None:
        self._body_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if not self._in_head and not self.transport.is_closing():
            log.info("closing a connection whose request body took over %g s", self.body_timeout)
            self.transport.close()

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._body_bytes = self._trailer_bytes = 0
        self._chunk_empty = False
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
        self._chunk_empty = False
        self._disarm_body()
        if self._draining:  # the skipped body ended: the connection serves the next request
            self._draining = False
            self._unset_keepalive_if_required()  # uvicorn's idle timeout, as after an answer
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

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


class _LingerOnClose:
    """The transport as uvicorn's request cycle sees it while the request body is still to
    come: its close after an answer marked `Connection: close` becomes a lingering close
    (a hard close with unread input sends a reset, which may destroy the answer)."""

    __slots__ = ("_protocol", "_transport")

    def __init__(
        self, transport: asyncio.Transport, protocol: weakref.ref[LimitedHttpToolsProtocol]
    ) -> None:
        self._transport = transport
        self._protocol = protocol  # weak: no cycle of protocol, cycle and this

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        protocol = self._protocol()
        if protocol is not None and not protocol._in_head and not self._transport.is_closing():
            protocol._linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _abort(protocol: weakref.ref[LimitedHttpToolsProtocol]) -> None:
    alive = protocol()
    if alive is not None and alive.transport is not None:
        alive.transport.abort()


def limited_protocol(
    *,
    max_header_bytes: int,
    header_timeout: float,
    max_connections: int,
    body_timeout: float = LimitedHttpToolsProtocol.body_timeout,
    max_body_bytes: int = LimitedHttpToolsProtocol.max_body_bytes,
) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for uvicorn's `http=` with these limits."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "header_timeout": header_timeout,
            "max_connections": max_connections,
            "body_timeout": body_timeout,
            "max_body_bytes": max_body_bytes,
        },
    )
