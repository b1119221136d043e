"""The one place that knows how bytes reach fal: a small HTTP/1.1 client on asyncio.

Parsing is httptools' (the parser uvicorn uses); this module only keeps a pool of
keep-alive connections and hands out responses whose body is read piece by piece. It
replaced aiohttp after measurement: per request it costs a fraction of aiohttp's CPU, and
per open stream about 7 KB instead of 16 KB (docs/benchmarks.md). Everything above this
module sees `Reply`, `OpenResponse` and the errors in `errors.py`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from .errors import FalBrokenError, FalConnectError, FalRequestInvalid, FalTimeout, FalTLSError

# Above this many unread body bytes the socket stops being read (back-pressure).
_HIGH_WATER = 256 * 1024
# Response headers kept besides every `x-fal-*` one (fal-protocol.md §1.3, §1.7).
_KEPT_HEADERS = frozenset({"content-type", "retry-after", "retry-after-ms"})


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


_Origin = tuple[str, str, int]  # scheme, host, port


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; parses one response at a time."""

    __slots__ = (
        "buffered", "chunks", "closed", "complete", "headers", "headers_done", "keep_alive", "lost",
        "origin", "parser", "reading_paused", "reused", "status", "transport", "waiter",
    )  # fmt: skip

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []  # usually 0 or 1 items: a list is far smaller than a deque
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.lost: BaseException | None = None
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.reused = False
        self.keep_alive = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(FalBrokenError(f"unreadable response from fal: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself and connection_lost follows

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if not self.complete:
            self._fail(FalBrokenError("fal closed the connection"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        if key not in _KEPT_HEADERS and not key.startswith("x-fal-"):
            return  # held for a stream's whole life, so keep only what fal's protocol uses
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and self.transport and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def on_message_complete(self) -> None:
        # Only meaningful now: the parser forgets it once the message is over.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True
        self._wake()

    # used by HttpClient and OpenResponse

    def start(self, request: bytes) -> None:
        self.status, self.headers, self.buffered = 0, {}, 0
        self.headers_done = self.complete = self.keep_alive = False
        self.chunks.clear()
        assert self.transport is not None
        self.transport.write(request)

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
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.lost = exc
        self._wake()


class OpenResponse:
    """A response whose headers have arrived and whose body is read piece by piece."""

    __slots__ = ("_client", "_conn", "headers", "status")

    def __init__(self, client: HttpClient, conn: _Connection) -> None:
        self._client = client
        self._conn: _Connection | None = conn
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers

    async def read_chunk(self) -> bytes:
        """Whatever body bytes have arrived (b"" at the end). Safe to cancel: nothing is
        lost, since bytes stay buffered until they are returned."""
        conn = self._conn
        if conn is None:
            return b""
        while not conn.chunks:
            if conn.complete:
                self.release()
                return b""
            try:
                await conn.wait()
            except FalBrokenError:
                self.close()
                raise
        return conn.take()

    async def read_body(self) -> bytes:
        parts = []
        while chunk := await self.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        """Drop the connection: fal cancels a direct request whose connection closes."""
        if self._conn is not None:
            if self._conn.complete:
                self.release()
            else:
                self._conn.close()
                self._conn = None

    def finish_in_background(self, timeout: float = 1.0) -> None:
        """Hand the rest of the body to a background reader that pools the connection
        when the response ends (or closes it if the end does not come within `timeout`)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client.track(self._client.drain(conn, timeout))

    def release(self) -> None:
        """Return a fully read connection to the pool (or close it)."""
        if self._conn is not None:
            self._client.give_back(self._conn)
            self._conn = None


class HttpClient:
    """One pool of keep-alive connections per process, used from the running loop."""

    def __init__(self, *, connect_timeout: float, max_idle_per_host: int, user_agent: str) -> None:
        self._connect_timeout = connect_timeout
        self._idle_per_host = max_idle_per_host
        self._user_agent = user_agent
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._background: set[asyncio.Task[None]] = set()

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background, holding a reference until it ends."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def open(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> OpenResponse:
        """Send a request and wait for the response headers."""
        origin, target, host = _split(url)
        request = self._serialize(method, target, host, headers, body)
        while True:
            conn = await self._connection(origin)
            try:
                conn.start(request)
                while not conn.headers_done:
                    await conn.wait()
            except FalBrokenError:
                conn.close()
                if conn.reused and conn.status == 0:
                    continue  # the server closed an idle connection as we reused it
                raise
            except BaseException:
                conn.close()
                raise
            return OpenResponse(self, conn)

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Reply:
        """Send a request and read the whole response."""
        response = await self.open(method, url, headers, body)
        try:
            data = await response.read_body()
        finally:
            response.close()
        return Reply(response.status, response.headers, data)

    async def drain(self, conn: _Connection, seconds: float) -> None:
        """Discard the rest of a response, then pool its connection."""
        try:
            async with asyncio.timeout(seconds):
                while not conn.complete:
                    conn.chunks.clear()
                    await conn.wait()
        except (TimeoutError, FalBrokenError):
            conn.close()
            return
        except asyncio.CancelledError:
            conn.close()
            raise
        self.give_back(conn)

    def give_back(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if conn.reusable() and len(idle) < self._idle_per_host:
            idle.append(conn)
        else:
            conn.close()

    async def _connection(self, origin: _Origin) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.reusable():
                conn.reused = True
                return conn
            conn.close()
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(origin),
                    host,
                    port,
                    ssl=self._ssl_context() if scheme == "https" else None,
                )
        except TimeoutError:
            raise FalTimeout("connect", self._connect_timeout) from None
        except ssl.SSLError as exc:
            raise FalTLSError(type(exc).__name__) from None
        except OSError as exc:
            raise FalConnectError(type(exc).__name__) from None
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _serialize(
        self, method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None
    ) -> bytes:
        # A CR or LF inside a value (a client's key, a URL from fal) would split the request.
        if " " in target or _has_line_break(target):
            raise FalRequestInvalid("a URL contains a space or a line break")
        if any(map(_has_line_break, (*headers, *headers.values()))):
            raise FalRequestInvalid("a header contains a line break")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {self._user_agent}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body) if body else 0}")
        text = "\r\n".join(lines)
        try:
            head = (text + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise FalRequestInvalid("a header is not Latin-1") from None
        return head + body if body else head


def _has_line_break(text: str) -> bool:
    return "\r" in text or "\n" in text


def _split(url: str) -> tuple[_Origin, str, str]:
    """URL -> ((scheme, host, port), request target, Host header)."""
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    origin, host = _origin(scheme.lower(), netloc)
    return origin, slash + path if slash else "/", host


@functools.lru_cache(maxsize=64)
def _origin(scheme: str, netloc: str) -> tuple[_Origin, str]:
    """Parsed once per origin: fal's URLs share a handful of them."""
    parts = urlsplit(f"{scheme}://{netloc}")
    if scheme not in ("http", "https") or not parts.hostname:
        raise FalConnectError(f"unsupported URL scheme or host: {scheme}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6
    host = name if port == default else f"{name}:{port}"
    return (scheme, parts.hostname, port), host
