"""One TCP (or TLS) connection to an upstream: writing a request, feeding the parser, and
waking the task that waits for what the parser produced.

TLS is done here on ssl.MemoryBIO, not by the loop: uvloop's SSLProtocol allocates a 256 KiB
receive buffer per connection (uvloop/includes/consts.pxi SSL_READ_MAX_SIZE) and a 256 KiB
bytes object per read. Here a connection holds the SSL object and two small BIOs: ~33 KB per
open TLS stream instead of ~41 KB (OpenSSL's own state is most of it), no growth on a second
burst, and ~25 % less CPU per request (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import cast

import httptools

from ..errors import FalBrokenError
from .parser import ResponseParser, parse_error

Origin = tuple[str, str, int]  # scheme, host, port

# Largest TLS read: a record carries at most 16 KiB of data (RFC 8446 §5.1).
_TLS_READ = 16 * 1024 + 256
# A body larger than this is written piece by piece, each when the socket can take it, so
# that an upload is held once (by its caller), not again in the transport's buffer or as
# TLS records (docs/operations.md, "Security").
WRITE_PIECE = 64 * 1024


class Connection(ResponseParser, asyncio.Protocol):
    """One connection; parses one response at a time (see ResponseParser)."""

    __slots__ = (
        "closed", "drained", "fd", "idle_since", "on_gone", "origin", "reading_paused",
        "reused", "tls", "tls_in", "tls_out", "tls_ready", "transport", "unsent", "waiter",
    )  # fmt: skip

    def __init__(self, origin: Origin) -> None:
        super().__init__()
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.fd = -1  # the socket's, to see a close that the loop has not read yet
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None  # set while writing is paused
        self.reading_paused = False
        self.reused = False
        self.unsent = False  # the upstream answered before the whole body was written
        self.idle_since = 0.0
        self.on_gone: Callable[[], None] | None = None  # frees the connection's slot, once
        # TLS, when the origin is https (see `start_tls`).
        self.tls: ssl.SSLObject | None = None
        self.tls_in: ssl.MemoryBIO | None = None
        self.tls_out: ssl.MemoryBIO | None = None
        self.tls_ready = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")  # the TCP socket, under TLS too
        if sock is not None:
            self.fd = sock.fileno()

    def data_received(self, data: bytes) -> None:
        if self.tls is not None:
            self._decrypt(data)
        else:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        if self.lost is not None:
            return  # failed (a head over the limits): the caller closes the connection
        if self.complete:
            # Bytes between responses (a 408, garbage): the connection cannot be reused.
            self.keep_alive = False
            self.close()
            return
        if self.headers_done and not self.chunk_empty:
            # A body's bytes, the hot path of a stream: nothing to count (see `feed`).
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                self._fail(parse_error(exc))
            return
        self.feed(data)

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """The TLS handshake (certificate and host name checked as `wrap_socket` does)."""
        self.tls_in, self.tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.tls_in, self.tls_out, server_hostname=server_hostname)
        self._handshake()
        try:
            while not self.tls_ready:
                await self.wait()
        except FalBrokenError:
            raise ConnectionResetError("the connection closed during the TLS handshake") from None

    def _handshake(self) -> None:
        assert self.tls is not None
        try:
            self.tls.do_handshake()
            self.tls_ready = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            self._fail(exc)  # raised by `start_tls`: a FalTLSError for the caller
        self._flush()
        if self.tls_ready:
            self._wake()

    def _decrypt(self, data: bytes) -> None:
        tls, incoming = self.tls, self.tls_in
        assert tls is not None and incoming is not None
        incoming.write(data)
        if not self.tls_ready:
            self._handshake()
            if not self.tls_ready:
                return
        while incoming.pending or tls.pending():
            try:
                plain = tls.read(_TLS_READ)  # one record at a time: at most 16 KiB
            except ssl.SSLWantReadError:
                break  # a record not complete yet
            except ssl.SSLZeroReturnError:
                break  # close_notify: the TCP close follows
            except ssl.SSLError as exc:
                self._fail(FalBrokenError(f"unreadable TLS data: {exc}"))
                self.close()
                return
            if not plain:
                break
            self._feed(plain)
            if self.closed:
                return
        if self.tls_out is not None and self.tls_out.pending:
            self._flush()  # what TLS itself had to answer (a key update)

    def _flush(self) -> None:
        if self.tls_out is not None and self.tls_out.pending and self.transport is not None:
            self.transport.write(self.tls_out.read())

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself and connection_lost follows

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._gone()
        self._drained()
        if self.complete:
            return
        if self.headers_done and not self.framed and exc is None:
            # A body without length or chunks ends when the connection closes (RFC 9112 §6.3).
            self.keep_alive = False
            self.complete = True
            self._wake()
        else:
            self._fail(FalBrokenError("the upstream closed the connection"))

    def pause_writing(self) -> None:
        if self.drained is None:
            self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._drained()

    def _drained(self) -> None:
        if self.drained is not None:
            if not self.drained.done():
                self.drained.set_result(None)
            self.drained = None

    # used by HttpClient and OpenResponse

    def start(self, request: bytes, keep_all: bool = False) -> None:
        """Write a whole request (head and a small body)."""
        self.reset(keep_all)
        self.unsent = False
        self._write(request)

    async def start_large(self, head: bytes, body: bytes, keep_all: bool = False) -> None:
        """Write the head, then the body piece by piece as the socket takes it; stop early
        if the upstream answers before the end (the connection is then not reused)."""
        self.reset(keep_all)
        self.unsent = False
        self._write(head)
        view = memoryview(body)
        for offset in range(0, len(view), WRITE_PIECE):
            while self.drained is not None:
                await self.drained
            if self.closed or self.lost is not None or self.headers_done:
                self.unsent = True  # an early answer (a 401, a 413): the rest is not wanted
                return
            self._write(view[offset : offset + WRITE_PIECE])

    def _write(self, data: bytes | memoryview) -> None:
        assert self.transport is not None
        if self.tls is not None:
            self.tls.write(data)
            self._flush()
        else:
            self.transport.write(data)

    async def wait(self) -> None:
        if self.lost is not None:
            raise self.lost
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
        if self.lost is not None:
            raise self.lost

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        self.chunks.clear()
        self.buffered = 0
        if self.reading_paused and self.transport:
            self.transport.resume_reading()
            self.reading_paused = False
        return data

    def reusable(self) -> bool:
        return (
            self.complete
            and not self.closed
            and self.lost is None
            and self.transport is not None
            and not self.transport.is_closing()
            and self.keep_alive
            and not self.unsent
        )

    def close(self) -> None:
        # Under TLS no close_notify is sent: HTTP/1.1 frames every body, so a truncation is
        # seen anyway, and fal's servers need none (waiting for theirs would hold memory).
        self.closed = True
        self._gone()
        if self.transport is not None:
            self.transport.close()

    def _gone(self) -> None:
        if self.on_gone is not None:
            on_gone, self.on_gone = self.on_gone, None
            on_gone()

    # hooks of ResponseParser

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.lost = exc
        self._wake()

    def _pause_reading(self) -> None:
        if self.transport is not None and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
