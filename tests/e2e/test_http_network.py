"""fal/http/ on real networks: proxies, CAs, happy eyeballs, stale and idle connections,
the connection cap, 1xx answers and bodies that end at the connection's close.

The upstreams here are raw asyncio servers, so that each test controls the wire exactly.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop

from fal_openai_proxy.fal import http
from fal_openai_proxy.fal.errors import (
    FalBrokenError,
    FalConnectError,
    FalResponseTooLarge,
    FalTLSError,
)
from fal_openai_proxy.fal.http import dial as _dial

Handler = Callable[["Upstream", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes] | None:
    """(request head, body), or None at the end of the connection."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return head, await reader.readexactly(length) if length else b""


class Upstream:
    """A raw HTTP server: counts connections (open, most at once) and keeps every request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, bytes]] = []
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def next_request(self, reader: asyncio.StreamReader) -> tuple[str, bytes] | None:
        request = await read_request(reader)
        if request is not None:
            self.requests.append(request)
        return request

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


async def answer_ok(up: Upstream, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """Keep-alive: answer every request with a 200."""
    while await up.next_request(reader) is not None:
        w.write(OK)
        await w.drain()


def client(**kwargs: Any) -> http.HttpClient:
    options: dict[str, Any] = {"connect_timeout": 5, "max_idle_per_host": 10, "user_agent": "t"}
    return http.HttpClient(**(options | kwargs))


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = await Upstream(answer_ok).start()
    yield up
    await up.stop()


# -- proxies ------------------------------------------------------------------------------


class ForwardProxy:
    """An HTTP proxy: CONNECT tunnels and absolute-form forwarding. Keeps each request head."""

    def __init__(self, refuse: int | None = None) -> None:
        self.heads: list[str] = []
        self.refuse = refuse
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> ForwardProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if request is None:
            writer.close()
            return
        head, body = request
        self.heads.append(head)
        if self.refuse:
            writer.write(f"HTTP/1.1 {self.refuse} No\r\nContent-Length: 0\r\n\r\n".encode())
            writer.close()
            return
        method, target, _ = head.split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            rest = target.removeprefix("http://")
            netloc, _, path = rest.partition("/")
            host, _, port = netloc.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            up_writer.write(head.replace(target, "/" + path, 1).encode("latin-1") + body)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway CA (file) and a certificate for localhost and 127.0.0.1 (file)."""
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("net-tls")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(folder / "server.pem")
    )
    return folder / "ca.pem", folder / "server.pem"


def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls_files[1]))
    return context


def clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def set_proxy(monkeypatch: pytest.MonkeyPatch, name: str, url: str) -> None:
    clear_proxy_env(monkeypatch)
    monkeypatch.setenv(name, url)


async def test_https_goes_through_a_connect_tunnel(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
    proxy = await ForwardProxy().start()
    # Lower case wins over upper case, as in curl and urllib.
    set_proxy(monkeypatch, "https_proxy", f"http://fal%40user:p%3Ass@127.0.0.1:{proxy.port}")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    up = await Upstream(answer_ok).start(server_tls(tls_files))
    c = client()
    for _ in range(2):
        reply = await c.send("POST", f"https://localhost:{up.port}/run/x", {}, b"{}")
        assert (reply.status, reply.body) == (200, b"ok")
    await c.close()
    await proxy.stop()
    await up.stop()
    assert len(proxy.heads) == 1  # one tunnel, reused for the second request
    connect = proxy.heads[0]
    assert connect.startswith(f"CONNECT localhost:{up.port} HTTP/1.1\r\n")
    expected = base64.b64encode(b"fal@user:p:ss").decode()
    assert f"Proxy-Authorization: Basic {expected}\r\n" in connect
    # Inside the tunnel the request is an ordinary one, without the proxy's credentials.
    assert up.requests[0][0].startswith("POST /run/x HTTP/1.1\r\n")
    assert "Proxy-Authorization" not in up.requests[0][0]


async def test_connect_tunnel_on_uvloop(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server runs on uvloop: sockets connected by hand must work with its transports."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))

    async def scenario() -> tuple[list[int], list[str]]:
        up = await Upstream(answer_ok).start(server_tls(tls_files))
        proxy = await ForwardProxy().start()
        set_proxy(monkeypatch, "ALL_PROXY", f"127.0.0.1:{proxy.port}")  # no scheme, as curl
        c = client()
        replies = [await c.send("POST", f"https://localhost:{up.port}/x", {}, b"{}") for _ in "ab"]
        await c.close()
        await proxy.stop()
        await up.stop()
        return [r.status for r in replies], proxy.heads

    statuses, heads = await asyncio.to_thread(uvloop.run, scenario())
    assert statuses == [200, 200]
    assert len(heads) == 1
    assert heads[0].startswith("CONNECT localhost:")
    assert "Proxy-Authorization" not in heads[0]


async def test_plain_http_is_forwarded_in_absolute_form(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await ForwardProxy().start()
    set_proxy(monkeypatch, "HTTP_PROXY", f"http://u:secret@127.0.0.1:{proxy.port}")
    c = client()
    reply = await c.send("GET", f"http://127.0.0.1:{upstream.port}/a/b?c=1", {})
    await c.close()
    await proxy.stop()
    assert (reply.status, reply.body) == (200, b"ok")
    head = proxy.heads[0]
    assert head.startswith(f"GET http://127.0.0.1:{upstream.port}/a/b?c=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{upstream.port}\r\n" in head
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'u:secret').decode()}" in head


@pytest.mark.parametrize(
    "no_proxy", ["*", "127.0.0.1", "localhost,127.0.0.0/8", ".0.0.1,127.0.0.1:{port}"]
)
async def test_no_proxy_bypasses_the_proxy(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    proxy = await ForwardProxy().start()
    set_proxy(monkeypatch, "HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", no_proxy.format(port=upstream.port))
    c = client()
    reply = await c.send("GET", f"http://127.0.0.1:{upstream.port}/x", {})
    await c.close()
    await proxy.stop()
    assert reply.status == 200
    assert proxy.heads == []
    assert upstream.requests[0][0].startswith("GET /x HTTP/1.1\r\n")


async def test_no_proxy_for_another_host_keeps_the_proxy(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await ForwardProxy().start()
    set_proxy(monkeypatch, "HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "fal.run,10.0.0.0/8,127.0.0.1:1")
    c = client()
    assert (await c.send("GET", f"http://127.0.0.1:{upstream.port}/x", {})).status == 200
    await c.close()
    await proxy.stop()
    assert len(proxy.heads) == 1


async def test_trust_env_false_ignores_the_proxy(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_proxy(monkeypatch, "HTTP_PROXY", "http://127.0.0.1:9")
    c = client(trust_env=False)
    assert (await c.send("GET", f"http://127.0.0.1:{upstream.port}/x", {})).status == 200
    await c.close()


async def test_a_refusing_proxy_is_a_connect_error_without_credentials(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await ForwardProxy(refuse=407).start()
    set_proxy(monkeypatch, "HTTPS_PROXY", f"http://user:hunter2@127.0.0.1:{proxy.port}")
    c = client()
    with caplog.at_level("DEBUG"), pytest.raises(FalConnectError) as caught:
        await c.send("POST", "https://fal.invalid/x", {}, b"{}")
    await c.close()
    await proxy.stop()
    assert "407" in str(caught.value)
    assert proxy.heads[0].startswith("CONNECT fal.invalid:443 HTTP/1.1\r\n")
    assert f"127.0.0.1:{proxy.port}" in caplog.text  # the route is logged, once
    assert "hunter2" not in caplog.text + str(caught.value) + repr(c._routes)


async def test_an_https_proxy_url_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    set_proxy(monkeypatch, "HTTPS_PROXY", "https://user:hunter2@proxy.invalid:3128")
    c = client()
    with pytest.raises(FalConnectError, match="not supported") as caught:
        await c.send("GET", "https://fal.invalid/x", {})
    assert "hunter2" not in str(caught.value)


# -- certificates -------------------------------------------------------------------------


async def test_ssl_cert_file_is_trusted(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    up = await Upstream(answer_ok).start(server_tls(tls_files))
    url = f"https://localhost:{up.port}/x"
    with pytest.raises(FalTLSError):
        await client().send("GET", url, {})
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
    c = client()
    assert (await c.send("GET", url, {})).status == 200
    await c.close()
    await up.stop()


@pytest.fixture
def ca_dir(tls_files: tuple[Path, Path], tmp_path: Path) -> Path:
    """A folder in OpenSSL's layout (files named by subject hash) holding the test CA."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command names CA files by their subject hash"
    digest = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(tls_files[0])],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folder = tmp_path / "certs"
    folder.mkdir()
    shutil.copy(tls_files[0], folder / f"{digest}.0")
    return folder


async def test_ssl_cert_dir_is_trusted(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ca_dir: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))  # not the system's file
    monkeypatch.setenv("SSL_CERT_DIR", str(ca_dir))
    up = await Upstream(answer_ok).start(server_tls(tls_files))
    c = client()
    assert (await c.send("GET", f"https://localhost:{up.port}/x", {})).status == 200
    await c.close()
    await up.stop()


def test_certifi_is_used_where_the_system_has_no_cas(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))  # empty
    context = _dial.tls_context()
    assert context.cert_store_stats()["x509_ca"] > 50  # certifi's bundle
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


# -- happy eyeballs -----------------------------------------------------------------------


async def test_race_starts_the_next_address_after_the_delay() -> None:
    started: list[str] = []
    spare = socket.socket()

    async def hangs() -> socket.socket:
        started.append("hangs")
        await asyncio.sleep(60)
        raise AssertionError("not cancelled")

    async def works() -> socket.socket:
        started.append("works")
        return spare

    begin = time.monotonic()
    winner = await _dial.race([hangs, works], delay=0.1)
    assert winner is spare
    assert started == ["hangs", "works"]
    assert 0.09 < time.monotonic() - begin < 1.0
    spare.close()


async def test_race_moves_on_at_once_when_an_address_fails() -> None:
    spare = socket.socket()

    async def fails() -> socket.socket:
        raise ConnectionRefusedError()

    async def works() -> socket.socket:
        return spare

    begin = time.monotonic()
    assert await _dial.race([fails, works], delay=5) is spare
    assert time.monotonic() - begin < 1.0
    spare.close()
    with pytest.raises(ConnectionRefusedError):
        await _dial.race([fails, fails], delay=5)


def test_interleave_alternates_families() -> None:
    v6 = [(socket.AF_INET6, 1, 6, "", (f"::{i}", 1)) for i in range(3)]
    v4 = [(socket.AF_INET, 1, 6, "", (f"10.0.0.{i}", 1)) for i in range(2)]
    mixed = _dial.interleave([*v6, *v4])
    assert [info[4][0] for info in mixed] == ["::0", "10.0.0.0", "::1", "10.0.0.1", "::2"]


@pytest.fixture
def black_hole() -> Iterator[tuple[str, int]]:
    """An address whose connects hang: a listening socket with a full backlog drops SYNs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    yield address
    for sock in (*fillers, listener):
        sock.close()


async def test_an_unreachable_first_address_does_not_stall_the_connection(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, black_hole: tuple[str, int]
) -> None:
    """fal.invalid resolves to a black hole first, then to the upstream."""
    loop = asyncio.get_running_loop()

    async def resolve(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        assert host == "fal.invalid"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", black_hole),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", upstream.port)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", resolve)
    c = client(connect_timeout=3)
    begin = time.monotonic()
    reply = await c.send("GET", f"http://fal.invalid:{upstream.port}/x", {})
    assert reply.status == 200
    assert 0.2 < time.monotonic() - begin < 2.0  # the second address after 0.25 s
    assert "Host: fal.invalid:" in upstream.requests[0][0]
    await c.close()


# -- stale, broken and idle connections ---------------------------------------------------


async def test_a_pooled_connection_closed_by_the_server_is_not_used(
    connections_made: list[int],
) -> None:
    async def one_then_close(up: Upstream, reader: asyncio.StreamReader, w: Any) -> None:
        if await up.next_request(reader) is not None:
            w.write(OK)  # keep-alive by default, then gone
            await w.drain()

    up = await Upstream(one_then_close).start()
    c = client()
    url = f"http://127.0.0.1:{up.port}/run"
    assert (await c.send("POST", url, {}, b"first")).status == 200
    await asyncio.sleep(0.1)  # the close reaches the client
    assert (await c.send("POST", url, {}, b"second")).status == 200
    await c.close()
    await up.stop()
    assert [body for _, body in up.requests] == [b"first", b"second"]
    assert len(connections_made) == 2


async def test_a_post_is_never_sent_twice_after_a_break(connections_made: list[int]) -> None:
    """On every connection the server answers one request, then reads the next and drops
    the connection: fal may have started that work, so a POST is not sent again."""

    async def drop_second(up: Upstream, reader: asyncio.StreamReader, w: Any) -> None:
        if await up.next_request(reader) is not None:
            w.write(OK)
            await w.drain()
            await up.next_request(reader)

    up = await Upstream(drop_second).start()
    c = client()
    url = f"http://127.0.0.1:{up.port}/run"
    assert (await c.send("POST", url, {}, b"first")).status == 200
    with pytest.raises(FalBrokenError):
        await c.send("POST", url, {}, b"second")
    assert [body for _, body in up.requests] == [b"first", b"second"]
    # A GET is idempotent: after the same break it is sent again on a new connection.
    assert (await c.send("GET", url, {})).status == 200
    assert (await c.send("GET", url, {})).status == 200
    assert [head.split(" ")[0] for head, _ in up.requests] == ["POST"] * 2 + ["GET"] * 3
    assert len(connections_made) == 3
    await c.close()
    await up.stop()


async def test_idle_connections_expire(upstream: Upstream, connections_made: list[int]) -> None:
    c = client(idle_expiry=0.2)
    url = f"http://127.0.0.1:{upstream.port}/x"
    assert (await c.send("GET", url, {})).status == 200
    assert (await c.send("GET", url, {})).status == 200
    assert len(connections_made) == 1  # reused while fresh
    await asyncio.sleep(0.5)
    assert upstream.open == 0  # closed by the sweep, with no request to trigger it
    assert (await c.send("GET", url, {})).status == 200
    assert len(connections_made) == 2
    await c.close()


# -- the connection cap -------------------------------------------------------------------


async def slow_ok(up: Upstream, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while await up.next_request(reader) is not None:
        await asyncio.sleep(0.15)
        w.write(OK)
        await w.drain()


async def test_the_connection_cap_makes_requests_wait() -> None:
    up = await Upstream(slow_ok).start()
    c = client(max_connections=2)
    url = f"http://127.0.0.1:{up.port}/x"
    replies = await asyncio.gather(*(c.send("POST", url, {}, b"{}") for _ in range(5)))
    assert [r.status for r in replies] == [200] * 5
    assert up.most_open == 2
    assert up.connections == 2  # the waiters took the pooled connections
    await c.close()
    await up.stop()


async def test_a_cancelled_wait_for_a_slot_gives_nothing_away() -> None:
    up = await Upstream(slow_ok).start()
    c = client(max_connections=1)
    url = f"http://127.0.0.1:{up.port}/x"
    busy = asyncio.ensure_future(c.send("GET", url, {}))
    await asyncio.sleep(0.01)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await c.send("GET", url, {})  # waits for the one slot, inside the caller's deadline
    assert (await busy).status == 200
    assert (await c.send("GET", url, {})).status == 200
    assert c._open == 1 and not c._slot_waiters
    await c.close()
    await up.stop()


async def test_at_the_cap_an_idle_connection_to_another_host_gives_way(
    upstream: Upstream,
) -> None:
    other = await Upstream(answer_ok).start()
    c = client(max_connections=1)
    assert (await c.send("GET", f"http://127.0.0.1:{upstream.port}/x", {})).status == 200
    assert (await c.send("GET", f"http://127.0.0.1:{other.port}/x", {})).status == 200
    await asyncio.sleep(0.05)
    assert (upstream.open, other.open, c._open) == (0, 1, 1)
    await c.close()
    await other.stop()


# -- what comes back ----------------------------------------------------------------------


async def test_requests_ask_for_no_compression(upstream: Upstream) -> None:
    c = client()
    await c.send("POST", f"http://127.0.0.1:{upstream.port}/x", {}, b"{}")
    await c.close()
    assert "\r\nAccept-Encoding: identity\r\n" in upstream.requests[0][0]


def scripted(*answers: bytes, close: bool = False) -> Handler:
    """Answer the first request with `answers` written one by one."""

    async def handle(up: Upstream, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if await up.next_request(reader) is None:
            return
        for part in answers:
            w.write(part)
            await w.drain()
            await asyncio.sleep(0.01)
        if not close:
            await reader.read()  # keep the connection until the client ends it

    return handle


async def run_scripted(
    handler: Handler, action: Callable[[http.OpenResponse], Coroutine[Any, Any, bytes]]
) -> tuple[int, dict[str, str], bytes, Upstream]:
    up = await Upstream(handler).start()
    c = client()
    response = await c.open("POST", f"http://127.0.0.1:{up.port}/x", {}, b"{}")
    data = await action(response)
    status, headers = response.status, dict(response.headers)
    response.close()
    await c.close()
    await up.stop()
    return status, headers, data, up


async def read_all(response: http.OpenResponse) -> bytes:
    return await response.read_body()


async def test_informational_answers_are_skipped() -> None:
    handler = scripted(
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nX-Fal-Hint: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n",
        b'{"a":1}',
    )
    status, headers, data, _ = await run_scripted(handler, read_all)
    assert (status, data) == (200, b'{"a":1}')
    assert headers == {"content-type": "application/json", "content-length": "7"}  # not the 103


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n",
    ],
    ids=["http-1.0", "connection-close"],
)
async def test_a_body_may_end_when_the_connection_closes(head: bytes) -> None:
    handler = scripted(head, b"first part, ", b"second part", close=True)
    status, _, data, _ = await run_scripted(handler, read_all)
    assert (status, data) == (200, b"first part, second part")


async def test_a_cut_chunked_body_is_still_a_break() -> None:
    handler = scripted(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"5\r\nhello\r\n", close=True
    )

    async def read_expecting_break(response: http.OpenResponse) -> bytes:
        with pytest.raises(FalBrokenError):
            await response.read_body()
        return b""

    await run_scripted(handler, read_expecting_break)


async def test_a_cut_body_with_a_length_is_still_a_break() -> None:
    handler = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"short", close=True)

    async def read_expecting_break(response: http.OpenResponse) -> bytes:
        with pytest.raises(FalBrokenError):
            await response.read_body()
        return b""

    await run_scripted(handler, read_expecting_break)


# -- what an upstream may send: heads, trailers and whole bodies are bounded ------------------


async def read_expecting(error: type[Exception], response: http.OpenResponse) -> bytes:
    with pytest.raises(error):
        await response.read_body()
    return b""


async def test_endless_repeated_headers_are_refused_not_joined_quadratically() -> None:
    """A media URL answered 10,000 `x-fal-*` lines (each kept, and once joined to all the
    previous ones): the head is refused at MAX_HEADER_LINES, the worker stays free."""
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Fal-Flood: aaaaaaaa\r\n" * 10_000 + b"\r\n"
    up = await Upstream(scripted(head)).start()
    c = client()
    with pytest.raises(FalBrokenError, match="header lines"):
        await c.open("GET", f"http://127.0.0.1:{up.port}/x", {})
    await c.close()
    await up.stop()


async def test_a_head_over_the_byte_cap_is_refused() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Fal-Big: " + b"a" * (http.MAX_HEAD_BYTES + 1)
    up = await Upstream(scripted(head)).start()
    c = client()
    with pytest.raises(FalBrokenError, match="head is over"):
        await c.open("GET", f"http://127.0.0.1:{up.port}/x", {})
    await c.close()
    await up.stop()


async def test_a_head_just_under_the_cap_with_its_body_in_one_packet_is_read() -> None:
    filler = b"X-Other: " + b"a" * 1000 + b"\r\n"
    lines = filler * ((http.MAX_HEAD_BYTES - 200) // len(filler))
    body = b"b" * 200_000
    answer = b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 200000\r\n\r\n" + body
    status, _, data, _ = await run_scripted(scripted(answer), read_all)
    assert (status, data) == (200, body)


async def test_repeated_headers_are_joined() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Fal-Tag: a\r\nX-Fal-Tag: b\r\nX-Fal-Tag: c\r\n"
    answer = head + b"Content-Length: 2\r\n\r\nok"
    _, headers, _, _ = await run_scripted(scripted(answer), read_all)
    assert headers["x-fal-tag"] == "a, b, c"


async def test_endless_trailers_are_cut() -> None:
    """httptools joins a header value piece by piece (quadratic): trailers count against the
    head's cap."""
    start = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
    trailer = [b"X-Trailer: " + b"t" * 16_000] + [b"t" * 16_000] * 10
    handler = scripted(start, *trailer)
    await run_scripted(handler, functools.partial(read_expecting, FalBrokenError))


@pytest.mark.parametrize("framing", ["content-length", "chunked", "until-close"])
async def test_a_whole_answer_over_max_body_bytes_is_refused(framing: str) -> None:
    """An 80 MB answer was relayed whole: `send` and `read_body` stop at max_body_bytes."""
    body = b"x" * 5000
    head = {
        "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "until-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    }[framing]
    parts = [head, b"1388\r\n" + body + b"\r\n0\r\n\r\n"] if framing == "chunked" else [head, body]
    up = await Upstream(scripted(*parts, close=framing == "until-close")).start()
    c = client(max_body_bytes=1000)
    with pytest.raises(FalResponseTooLarge):
        await c.send("GET", f"http://127.0.0.1:{up.port}/x", {})
    await c.close()
    await up.stop()


# -- the keep-alive race ------------------------------------------------------------------


class ClosingWhenIdle:
    """A blocking server in its own thread that closes a connection left idle for
    `keep_alive` seconds, as uvicorn and nginx do (`timeout_keep_alive`, `keepalive_timeout`).
    In its own thread, so that the client's loop can be busy while the close arrives."""

    def __init__(self, keep_alive: float, tls: ssl.SSLContext | None = None) -> None:
        self.keep_alive = keep_alive
        self.tls = tls
        self.bodies: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        sock = self.tls.wrap_socket(raw, server_side=True) if self.tls else raw
        data = b""
        with sock:
            while True:
                try:
                    while b"\r\n\r\n" not in data:
                        sock.settimeout(self.keep_alive)
                        more = sock.recv(65536)
                        if not more:
                            return
                        data += more
                except (TimeoutError, OSError):
                    return  # idle too long: close, as a keep-alive timeout does
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(data) < length:
                    data += sock.recv(65536)
                self.bodies.append(data[:length])
                data = data[length:]
                sock.sendall(OK)

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_connection_closed_while_the_loop_was_busy_is_not_reused(
    scheme: str, loop: str, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race behind "The connection to fal broke" under load: the server closes an idle
    connection while the client's loop is busy, so the client has not yet seen the close
    when it picks that connection for a POST. A POST is never sent twice, so the client must
    notice the close before writing (the socket is readable: EOF or a TLS alert is waiting)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
    server = ClosingWhenIdle(0.2, server_tls(tls_files) if scheme == "https" else None)

    async def scenario() -> list[int]:
        c = client()
        url = f"{scheme}://127.0.0.1:{server.port}/run"
        statuses = [(await c.send("POST", url, {}, b"first")).status]
        time.sleep(0.5)  # noqa: ASYNC251 (on purpose: a busy loop misses the close)
        statuses.append((await c.send("POST", url, {}, b"second")).status)
        await c.close()
        await asyncio.sleep(0.05)  # the TLS transports' closes take a loop turn
        return statuses

    runner = uvloop.run if loop == "uvloop" else asyncio.run
    try:
        statuses = await asyncio.to_thread(runner, scenario())
    finally:
        server.close()
    assert statuses == [200, 200]
    assert server.bodies == [b"first", b"second"]  # each sent once
