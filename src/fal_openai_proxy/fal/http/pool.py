"""The pool: keep-alive connections per origin, a cap on connections open, and dialling
(proxies, happy eyeballs, TLS). `HttpClient` is what the rest of the proxy uses.

For real networks: proxies from the standard environment variables (`proxies.py`), happy
eyeballs and CONNECT tunnels (`dial.py`), the system's CAs or certifi's, idle expiry, a cap on
open connections, and an optional check of every address dialled (`allow_address`: the media
client refuses private addresses, `fal/media_fetch.py`).
"""

from __future__ import annotations

import asyncio
import logging
import select
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import FalBrokenError, FalConnectError, FalTimeout, FalTLSError, FalUnsafeURL
from . import dial, proxies
from .connection import WRITE_PIECE, Connection, Origin
from .request import serialize, split_url
from .response import OpenResponse, Reply

log = logging.getLogger(__name__)

# Methods that may be sent again after a reused connection broke before any answer
# (RFC 9110 §9.2.2): a PUT to cancel_url is one, a POST never is (fal may have started it).
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# The largest answer read whole (`send`, `read_body`) unless the client is told otherwise.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

# (host, address) -> whether a connection to that address may be made for that host.
AddressCheck = Callable[[str, str], bool]


@dataclass(frozen=True)
class _Route:
    """How requests to one origin travel: directly, tunnelled, or forwarded by a proxy."""

    proxy: proxies.Proxy | None
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
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        allow_address: AddressCheck | None = None,
    ) -> None:
        """`max_body_bytes`: the largest answer `send` and `read_body` read whole.
        `allow_address`: asked for every address dialled (and, through an outbound proxy,
        for every address the target's name resolves to); a refusal is FalUnsafeURL."""
        self.max_body_bytes = max_body_bytes
        self._allow_address = allow_address
        self._connect_timeout = connect_timeout
        self._idle_per_host = max_idle_per_host
        self._user_agent = user_agent
        self._max_connections = max_connections or default_max_connections()
        self._idle_expiry = idle_expiry
        self._idle: dict[Origin, list[Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Read once: the environment of a running server does not change.
        self._proxies = proxies.environment_proxies() if trust_env else {}
        self._routes: dict[Origin, _Route] = {}
        self._open = 0  # connections open or being opened, idle ones included
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._poll = select.poll()  # poll, not select: descriptors may exceed FD_SETSIZE
        self._trust_env = trust_env
        self._children: list[HttpClient] = []

    def guarded(self, allow_address: AddressCheck, *, max_idle_per_host: int = 8) -> HttpClient:
        """A client of its own (its own pool, so that every connection it reuses was made
        under the check) asking `allow_address` for every address it dials; closed with
        this one."""
        child = HttpClient(
            connect_timeout=self._connect_timeout,
            max_idle_per_host=max_idle_per_host,
            user_agent=self._user_agent,
            max_connections=self._max_connections,
            idle_expiry=self._idle_expiry,
            trust_env=self._trust_env,
            max_body_bytes=self.max_body_bytes,
            allow_address=allow_address,
        )
        self._children.append(child)
        return child

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
        for child in self._children:
            await child.close()

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
        origin, target, host = split_url(url)
        route = self._routes.get(origin) or self._route(origin)
        if route.forward:
            target = route.prefix + target
        length = len(body) if body else 0
        head = serialize(method, target, host, self._user_agent, headers, length, route.extra)
        # A small body goes with its head in one write; a large one is written as the
        # socket takes it (an upload is then held once, by its caller).
        large = body if length > WRITE_PIECE else None
        request = head if large is not None or not body else head + body
        while True:
            conn = await self._connection(origin, route)
            try:
                if large is None:
                    conn.start(request, all_headers)
                else:
                    await conn.start_large(request, large, all_headers)
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

    async def drain(self, conn: Connection, seconds: float) -> None:
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

    def give_back(self, conn: Connection) -> None:
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

    async def _connection(self, origin: Origin, route: _Route) -> Connection:
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

    def _unread_input(self, conn: Connection) -> bool:
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

    async def _new_connection(self, origin: Origin, route: _Route) -> Connection:
        made: list[Connection] = []

        def protocol() -> Connection:
            conn = Connection(origin)
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
        self, origin: Origin, route: _Route, protocol: Callable[[], Connection]
    ) -> Connection:
        scheme, host, port = origin
        proxy = route.proxy
        tunnel = proxy is not None and not route.forward
        if proxy is None:
            infos = self._allowed(host, await dial.resolve(host, port))
        else:
            if self._allow_address is not None:
                # The proxy resolves the name again: this check is the best that can be done.
                self._allowed(host, await dial.resolve(host, port))
            infos = await dial.resolve(proxy.host, proxy.port)
        tls = self._ssl_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        if len(infos) == 1 and not tunnel:
            family, _, _, _, address = infos[0]
            _, conn = await loop.create_connection(protocol, address[0], address[1], family=family)
        else:
            sock = await dial.open_socket(infos)
            try:
                if proxy is not None and tunnel:
                    await dial.tunnel(sock, host, port, proxy.authorization)
                _, conn = await loop.create_connection(protocol, sock=sock)
            except BaseException:
                sock.close()
                raise
        if tls is not None:
            await conn.start_tls(tls, host)  # inside the tunnel, if there is one
        return conn

    def _allowed(self, host: str, infos: list[dial.AddrInfo]) -> list[dial.AddrInfo]:
        """The addresses `allow_address` accepts for `host`; FalUnsafeURL if any is refused
        (a name that resolves to a public and a private address is refused whole)."""
        check = self._allow_address
        if check is None:
            return infos
        if not all(check(host, info[4][0]) for info in infos):
            raise FalUnsafeURL("a URL's host resolves to an address the proxy will not call")
        return infos

    def _route(self, origin: Origin) -> _Route:
        """Chosen once per origin: fal's URLs share a handful of them."""
        scheme, host, port = origin
        try:
            proxy = proxies.proxy_for(self._proxies, scheme, host, port)
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
            self._ssl = dial.tls_context()
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
        oldest: list[Connection] | None = None
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
