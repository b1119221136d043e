"""The one place that knows how bytes reach fal: a small HTTP/1.1 client on asyncio.

Parsing is httptools' (the parser uvicorn uses); this module only keeps a pool of
keep-alive connections and hands out responses whose body is read piece by piece. It
replaced aiohttp after measurement: per request it costs a fraction of aiohttp's CPU, and
per open stream about 7 KB instead of 16 KB (docs/benchmarks.md). TLS is done here too,
on ssl.MemoryBIO (`_Connection.start_tls`). Everything above this module sees `Reply`,
`OpenResponse` and the errors in `errors.py`.

For real networks: proxies from the standard environment variables (`_proxy.py`), happy
eyeballs and CONNECT tunnels (`_dial.py`), the system's CAs or certifi's, idle expiry, a cap
on open connections, 1xx answers skipped, and bodies that end when the connection closes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import select
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from . import _dial, _proxy
from .errors import FalBrokenError, FalConnectError, FalRequestInvalid, FalTimeout, FalTLSError

log = logging.getLogger(__name__)

# Above this many unread body bytes the socket stops being read (back-pressure).
_HIGH_WATER = 256 * 1024
# Response headers kept besides every `x-fal-*` one (docs/fal-protocol.md §2).
_KEPT_HEADERS = frozenset({"content-type", "retry-after", "retry-after-ms"})
# Headers that delimit a body; without them it ends when the connection closes (RFC 9112 §6.3).
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
# Methods that may be sent again after a reused connection broke before any answer
# (RFC 9110 §9.2.2): a PUT to cancel_url is one, a POST never is (fal may have started it).
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Largest TLS read: a record carries at most 16 KiB of data (RFC 8446 §5.1).
_TLS_READ = 16 * 1024 + 256


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


_Origin = tuple[str, str, int]  # scheme, host, port


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; parses one response at a time."""

    __slots__ = (
        "buffered", "chunks", "closed", "complete", "fd", "framed", "headers", "headers_done",
        "idle_since", "informational", "keep_alive", "keep_all", "lost", "on_gone", "origin",
        "parser", "reading_paused", "reused", "status", "tls", "tls_in", "tls_out",
        "tls_ready", "transport", "waiter",
    )  # fmt: skip

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.fd = -1  # the socket's, to see a close that the loop has not read yet
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
        self.framed = False  # Content-Length or Transfer-Encoding seen
        self.informational = False  # inside a 1xx answer
        self.keep_all = False  # keep every response header (the fal proxy relays them)
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
        if self.complete:
            # Bytes between responses (a 408, garbage): the connection cannot be reused.
            self.keep_alive = False
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(FalBrokenError(f"unreadable response from fal: {exc}"))

    # TLS over the plain transport, with ssl.MemoryBIO: uvloop's SSLProtocol allocates a
    # 256 KiB receive buffer per connection (uvloop/includes/consts.pxi SSL_READ_MAX_SIZE)
    # and a 256 KiB bytes object per read. Here a connection holds the SSL object and two
    # small BIOs: ~33 KB per open TLS stream instead of ~41 KB (OpenSSL's own state is most
    # of it), no growth on a second burst, and ~25 % less CPU per request (docs/benchmarks.md).

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
                self._fail(FalBrokenError(f"unreadable TLS data from fal: {exc}"))
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
        if self.complete:
            return
        if self.headers_done and not self.framed and exc is None:
            # A body without length or chunks ends when the connection closes (RFC 9112 §6.3).
            self.keep_alive = False
            self.complete = True
            self._wake()
        else:
            self._fail(FalBrokenError("fal closed the connection"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        if key in _FRAMING_HEADERS:
            self.framed = True
        if not self.keep_all and key not in _KEPT_HEADERS and not key.startswith("x-fal-"):
            return  # held for a stream's whole life, so keep only what fal's protocol uses
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200 and self.status != 101:
            # 100 Continue, 103 Early Hints: the final answer follows on the same connection.
            self.informational = True
            self.headers = {}
            self.framed = False
            return
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
        if self.informational:
            self.informational = False
            return
        # Only meaningful now: the parser forgets it once the message is over.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True
        self._wake()

    # used by HttpClient and OpenResponse

    def start(self, request: bytes, keep_all: bool = False) -> None:
        self.status, self.headers, self.buffered = 0, {}, 0
        self.keep_all = keep_all
        self.headers_done = self.complete = self.keep_alive = self.framed = False
        self.chunks.clear()
        assert self.transport is not None
        if self.tls is not None:
            self.tls.write(request)
            self._flush()
        else:
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


@dataclass(frozen=True)
class _Route:
    """How requests to one origin travel: directly, tunnelled, or forwarded by a proxy."""

    proxy: _proxy.Proxy | None
    forward: bool  # plain http through the proxy: absolute-form targets (RFC 9112 §3.2.2)
    prefix: str  # "http://host[:port]" for absolute-form targets, else ""
    extra: str  # header lines added to every request ("" or Proxy-Authorization)


_DIRECT = _Route(None, False, "", "")


class HttpClient:
    """One pool of keep-alive connections per process, used from the running loop."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        max_idle_per_host: int,
        user_agent: str,
        max_connections: int | None = None,
        idle_expiry: float = 30.0,  # below the upstream's keep-alive timeout (settings.py)
        trust_env: bool = True,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._idle_per_host = max_idle_per_host
        self._user_agent = user_agent
        self._max_connections = max_connections or default_max_connections()
        self._idle_expiry = idle_expiry
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Read once: the environment of a running server does not change.
        self._proxies = _proxy.environment_proxies() if trust_env else {}
        self._routes: dict[_Origin, _Route] = {}
        self._open = 0  # connections open or being opened, idle ones included
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._poll = select.poll()  # poll, not select: descriptors may exceed FD_SETSIZE

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background, holding a reference until it ends."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def open(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        all_headers: bool = False,
    ) -> OpenResponse:
        """Send a request and wait for the response headers. `all_headers`: keep every
        response header, not only those fal's protocol reads (for a relay)."""
        origin, target, host = _split(url)
        route = self._routes.get(origin) or self._route(origin)
        if route.forward:
            target = route.prefix + target
        request = self._serialize(method, target, host, headers, body, route.extra)
        while True:
            conn = await self._connection(origin, route)
            try:
                conn.start(request, all_headers)
                while not conn.headers_done:
                    await conn.wait()
            except FalBrokenError:
                conn.close()
                if conn.reused and conn.status == 0 and method in _IDEMPOTENT:
                    # A stale keep-alive connection. A POST is not sent again: fal may have
                    # received it before the connection broke.
                    continue
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
            conn.idle_since = time.monotonic()
            idle.append(conn)
            if self._sweeper is None:
                self._sweeper = asyncio.get_running_loop().call_later(
                    self._idle_expiry, self._sweep
                )
            if self._slot_waiters:
                self._wake_slot_waiter()  # it may want this origin
        else:
            conn.close()

    # -- connections ------------------------------------------------------------------------

    async def _connection(self, origin: _Origin, route: _Route) -> _Connection:
        while True:
            idle = self._idle.get(origin)
            if idle:
                now = time.monotonic()
                while idle:
                    conn = idle.pop()  # the most recently used, the least likely stale
                    if (
                        conn.reusable()
                        and now - conn.idle_since < self._idle_expiry
                        and not self._unread_input(conn)
                    ):
                        conn.reused = True
                        return conn
                    conn.close()  # closed by fal, or idle too long: never reused
            if self._open < self._max_connections:
                break
            if not self._close_oldest_idle():
                await self._wait_for_slot()
        self._open += 1
        return await self._new_connection(origin, route)

    def _unread_input(self, conn: _Connection) -> bool:
        """Whether the socket of an idle connection has input the loop has not read yet.

        An idle keep-alive connection has nothing to say: input is the server's close (FIN,
        RST, a TLS alert) or bytes that already make it unusable. A busy loop reads it late
        (milliseconds under load), and a POST written meanwhile dies on the closed socket
        and is never sent again (fal may have received it). Asking the kernel first (~0.5 us)
        leaves only the network's own delay for that race; the idle expiry, kept below the
        server's keep-alive timeout, closes the rest of it from our side."""
        if conn.fd < 0:
            return False
        poll = self._poll
        poll.register(conn.fd, select.POLLIN)  # POLLHUP and POLLERR are always reported
        try:
            return bool(poll.poll(0))
        finally:
            poll.unregister(conn.fd)

    async def _new_connection(self, origin: _Origin, route: _Route) -> _Connection:
        made: list[_Connection] = []

        def protocol() -> _Connection:
            conn = _Connection(origin)
            conn.on_gone = self._release_slot
            made.append(conn)
            return conn

        try:
            async with asyncio.timeout(self._connect_timeout):
                return await self._dial(origin, route, protocol)
        except BaseException as exc:
            if made:
                made[0].close()
            else:
                self._release_slot()
            if isinstance(exc, TimeoutError):
                raise FalTimeout("connect", self._connect_timeout) from None
            if isinstance(exc, ssl.SSLError):
                raise FalTLSError(type(exc).__name__) from None
            if isinstance(exc, OSError):
                raise FalConnectError(type(exc).__name__) from None
            raise

    async def _dial(
        self, origin: _Origin, route: _Route, protocol: Callable[[], _Connection]
    ) -> _Connection:
        scheme, host, port = origin
        proxy = route.proxy
        tunnel = proxy is not None and not route.forward
        infos = await (
            _dial.resolve(proxy.host, proxy.port) if proxy else _dial.resolve(host, port)
        )
        tls = self._ssl_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        if len(infos) == 1 and not tunnel:
            family, _, _, _, address = infos[0]
            _, conn = await loop.create_connection(protocol, address[0], address[1], family=family)
        else:
            sock = await _dial.open_socket(infos)
            try:
                if proxy is not None and tunnel:
                    await _dial.tunnel(sock, host, port, proxy.authorization)
                _, conn = await loop.create_connection(protocol, sock=sock)
            except BaseException:
                sock.close()
                raise
        if tls is not None:
            await conn.start_tls(tls, host)  # inside the tunnel, if there is one
        return conn

    def _route(self, origin: _Origin) -> _Route:
        """Chosen once per origin: fal's URLs share a handful of them."""
        scheme, host, port = origin
        try:
            proxy = _proxy.proxy_for(self._proxies, scheme, host, port)
        except ValueError as exc:
            raise FalConnectError(f"bad proxy setting: {exc}") from None
        if proxy is None:
            route = _DIRECT
        else:
            log.info("connections to %s go through the proxy %s", host, proxy.address)
            if scheme == "https":  # a CONNECT tunnel: the requests inside are fal's own
                route = _Route(proxy, False, "", "")
            else:
                name = f"[{host}]" if ":" in host else host
                prefix = f"http://{name}" if port == 80 else f"http://{name}:{port}"
                auth = proxy.authorization
                extra = f"\r\nProxy-Authorization: {auth}" if auth else ""
                route = _Route(proxy, True, prefix, extra)
        self._routes[origin] = route
        return route

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = _dial.tls_context()
        return self._ssl

    # -- the connection cap -----------------------------------------------------------------

    def _release_slot(self) -> None:
        self._open -= 1
        if self._slot_waiters:
            self._wake_slot_waiter()

    def _wake_slot_waiter(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _wait_for_slot(self) -> None:
        """Wait until a connection closes or returns to the pool. Cancellable: callers'
        deadlines bound the wait."""
        waiter = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake_slot_waiter()  # woken but leaving: pass the turn on
            else:
                waiter.cancel()
            raise

    def _close_oldest_idle(self) -> bool:
        """At the cap, an idle connection to another host gives way to a new one."""
        oldest: list[_Connection] | None = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest[0].idle_since):
                oldest = conns
        if oldest is None:
            return False
        oldest.pop(0).close()
        return True

    def _sweep(self) -> None:
        """Close connections idle past the expiry; run while any connection is idle."""
        self._sweeper = None
        now = time.monotonic()
        next_expiry = None
        for conns in self._idle.values():
            while conns and (
                now - conns[0].idle_since >= self._idle_expiry or not conns[0].reusable()
            ):
                conns.pop(0).close()
            if conns:
                due = conns[0].idle_since + self._idle_expiry
                next_expiry = due if next_expiry is None else min(next_expiry, due)
        if next_expiry is not None:
            self._sweeper = asyncio.get_running_loop().call_later(
                max(next_expiry - now, 0.01), self._sweep
            )

    def _serialize(
        self,
        method: str,
        target: str,
        host: str,
        headers: Mapping[str, str],
        body: bytes | None,
        extra: str = "",
    ) -> bytes:
        # A CR or LF inside a value (a client's key, a URL from fal) would split the request.
        if " " in target or _has_line_break(target):
            raise FalRequestInvalid("a URL contains a space or a line break")
        if any(map(_has_line_break, (*headers, *headers.values()))):
            raise FalRequestInvalid("a header contains a line break")
        # identity: a compressed body could not be relayed piece by piece as it arrives.
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: {host}{extra}",
            f"User-Agent: {self._user_agent}",
            "Accept-Encoding: identity",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body) if body else 0}")
        text = "\r\n".join(lines)
        try:
            head = (text + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise FalRequestInvalid("a header is not Latin-1") from None
        return head + body if body else head


def default_max_connections() -> int:
    """Half the open-file limit (clients' sockets need the rest), within 64..4096: 512 under
    the common limit of 1024, and never a request failing on EMFILE instead of waiting."""
    try:
        import resource
    except ImportError:  # Windows
        return 512
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 4096
    return min(4096, max(64, soft // 2))


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
