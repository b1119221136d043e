"""Opening a TCP socket to fal: happy eyeballs, CONNECT tunnels, the trusted CAs.

uvloop's `create_connection` has no `happy_eyeballs_delay`/`interleave` (uvloop 0.23), so
a host with several addresses has them raced here (RFC 8305, as asyncio does with delay
0.25 s and interleave 1), and the connected socket is handed to `create_connection(sock=)`.
A single address goes straight to `create_connection(ip, port)`: uvloop's native connect
costs about 90 us less CPU than `sock_connect` does (bench/http_cpu.py). A tunnel through
an http proxy is set up on the socket before TLS starts, so TLS (done by connection.py's
connections themselves) runs over the tunnel.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import FalConnectError

HAPPY_EYEBALLS_DELAY = 0.25
_MAX_CONNECT_HEAD = 16 * 1024

AddrInfo = tuple[Any, ...]  # (family, type, proto, canonname, sockaddr)


async def resolve(host: str, port: int) -> list[AddrInfo]:
    """The addresses of host:port; an IP address needs no resolver (a thread-pool trip)."""
    infos = _literal(host, port)
    if infos is None:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"no address for {host}")
    return infos


async def open_socket(
    infos: Sequence[AddrInfo], delay: float = HAPPY_EYEBALLS_DELAY
) -> socket.socket:
    """A connected non-blocking TCP socket to one of the addresses, tried RFC 8305-style."""
    loop = asyncio.get_running_loop()
    if len(infos) == 1:
        return await _attempt(loop, infos[0])()  # nothing to race: no tasks
    return await race([_attempt(loop, info) for info in interleave(infos)], delay)


def _literal(host: str, port: int) -> list[AddrInfo] | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
    return None


def interleave(infos: Sequence[AddrInfo]) -> list[AddrInfo]:
    """Alternate address families, starting with the resolver's first choice (interleave=1)."""
    first = infos[0][0]
    preferred = [i for i in infos if i[0] == first]
    others = [i for i in infos if i[0] != first]
    mixed: list[AddrInfo] = []
    for index in range(max(len(preferred), len(others))):
        mixed += preferred[index : index + 1] + others[index : index + 1]
    return mixed


def _attempt(
    loop: asyncio.AbstractEventLoop, info: AddrInfo
) -> Callable[[], Awaitable[socket.socket]]:
    async def connect() -> socket.socket:
        family, kind, proto, _, address = info
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    return connect


async def race(
    attempts: Sequence[Callable[[], Awaitable[socket.socket]]], delay: float
) -> socket.socket:
    """Start the attempts `delay` apart (the next one at once when one fails); the first
    to connect wins and the others are cancelled (their sockets closed)."""
    pending: set[asyncio.Future[socket.socket]] = set()
    errors: list[BaseException] = []
    queue = list(attempts)
    try:
        while queue or pending:
            if queue:
                pending.add(asyncio.ensure_future(queue.pop(0)()))
            done, pending = await asyncio.wait(
                pending, timeout=delay if queue else None, return_when=asyncio.FIRST_COMPLETED
            )
            winner = None
            for task in done:
                exc = task.exception()
                if exc is not None:
                    errors.append(exc)
                elif winner is None:
                    winner = task.result()
                else:
                    task.result().close()
            if winner is not None:
                return winner
    finally:
        for task in pending:
            task.cancel()
            task.add_done_callback(_close_late_winner)
    raise errors[0]


def _close_late_winner(task: asyncio.Future[socket.socket]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().close()


async def tunnel(sock: socket.socket, host: str, port: int, authorization: str | None) -> None:
    """Ask the http proxy `sock` is connected to for a tunnel to host:port (RFC 9110 §9.3.6)."""
    loop = asyncio.get_running_loop()
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if authorization:
        head += f"Proxy-Authorization: {authorization}\r\n"
    await loop.sock_sendall(sock, (head + "\r\n").encode("latin-1"))
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = await loop.sock_recv(sock, 4096)
        if not data:
            raise FalConnectError("the proxy closed the connection during CONNECT")
        answer += data
        if len(answer) > _MAX_CONNECT_HEAD:
            raise FalConnectError("the proxy's CONNECT answer is too long")
    head_bytes, _, extra = answer.partition(b"\r\n\r\n")
    status_line = head_bytes.partition(b"\r\n")[0]
    fields = status_line.split(b" ", 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        raise FalConnectError("the proxy's CONNECT answer is not HTTP")
    status = int(fields[1])
    if not 200 <= status < 300:
        raise FalConnectError(f"the proxy answered CONNECT with HTTP {status}")
    if extra:
        # Bytes after the answer would belong to the TLS handshake, which we start.
        raise FalConnectError("the proxy sent data after its CONNECT answer")


def tls_context() -> ssl.SSLContext:
    """The system's CAs (SSL_CERT_FILE and SSL_CERT_DIR honoured, as OpenSSL reads them);
    certifi's bundle where the system has none (slim containers without ca-certificates)."""
    context = ssl.create_default_context()
    if not _system_has_cas():
        import certifi  # only needed without system CAs

        context.load_verify_locations(cafile=certifi.where())
    return context


def _system_has_cas() -> bool:
    paths = ssl.get_default_verify_paths()  # None for a file or folder that does not exist
    if paths.cafile is not None:
        return True
    if paths.capath is not None:
        try:
            with os.scandir(paths.capath) as entries:  # closed, not left to the GC
                return any(entries)
        except OSError:
            return False
    return False
