"""Connections a client tries to hold after the proxy has answered (connection.py): a body
trickled after an early 401 or 413, endless trailers on a chunked body. Each is closed soon,
and 50 such clients do not fill MAX_CONNECTIONS."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from ..support.servers import API_KEY, RunningProxy

# Generous: the proxy closes these within LINGER (2 s) or BODY_TIMEOUT + grace; before the
# fix it never did.
WITHIN = 8.0


@pytest.fixture(scope="module")
def keyed(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(api_key=API_KEY, max_connections=60)


def head(length: int, key: str = "wrong-key", chunked: bool = False) -> bytes:
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % length
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer " + key.encode() + b"\r\n"
        + framing + b"\r\n\r\n"
    )  # fmt: skip


def trickle_until_closed(sock: socket.socket, piece: bytes, every: float) -> tuple[bytes, float]:
    """Send `piece` every `every` s; return what the server said and when it closed."""
    started = time.monotonic()
    answer = b""
    sock.settimeout(every)
    while time.monotonic() - started < WITHIN:
        try:
            sock.sendall(piece)
        except OSError:
            return answer, time.monotonic() - started  # the server closed (EPIPE, reset)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return answer, time.monotonic() - started
        if not data:
            return answer, time.monotonic() - started
        answer += data
    return answer, -1.0


@pytest.mark.parametrize(
    ("length", "status"),
    [(20_000_000, b"401"), (200_000_000, b"413")],
    ids=["wrong-key", "too-large"],
)
def test_a_body_trickled_after_an_early_answer_does_not_hold_the_connection(
    keyed: RunningProxy, length: int, status: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", keyed.port)) as sock:
        sock.sendall(head(length))
        answer, closed_after = trickle_until_closed(sock, b"{", 0.25)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:100]
    assert b"\r\nconnection: close\r\n" in answer.lower()  # no client reuses it
    assert closed_after >= 0, "the connection was still open"


def test_fifty_trickling_clients_leave_healthz_served(keyed: RunningProxy) -> None:
    socks = [socket.create_connection(("127.0.0.1", keyed.port)) for _ in range(50)]
    try:
        for sock in socks:
            sock.sendall(head(20_000_000))
        deadline = time.monotonic() + WITHIN
        open_socks = list(socks)
        while open_socks and time.monotonic() < deadline:
            for sock in list(open_socks):
                sock.settimeout(0.01)
                with contextlib.suppress(TimeoutError):
                    try:
                        sock.sendall(b" ")
                        if sock.recv(65536) == b"":
                            open_socks.remove(sock)
                    except (ConnectionError, BrokenPipeError):
                        open_socks.remove(sock)
            time.sleep(0.2)
        assert not open_socks, f"{len(open_socks)} connections still held"
        # Ten more connections than MAX_CONNECTIONS would allow if the 50 were still held.
        for _ in range(15):
            assert httpx.get(keyed.base_url + "/healthz").status_code == 200
    finally:
        for sock in socks:
            sock.close()


def test_endless_trailers_on_a_chunked_body_are_cut(keyed: RunningProxy) -> None:
    with socket.create_connection(("127.0.0.1", keyed.port)) as sock:
        sock.sendall(head(0, key=API_KEY, chunked=True) + b"2\r\n{}\r\n0\r\nX-Trailer: ")
        answer, closed_after = trickle_until_closed(sock, b"t" * 8192, 0.01)
    assert closed_after >= 0, "the connection was still open"
    assert not answer  # closed without an answer: the request never completed


def test_an_early_answer_still_reaches_a_client_sending_its_whole_body(
    keyed: RunningProxy, http: httpx.Client
) -> None:
    """The close after an early answer is graceful: a client that writes its whole body
    before reading (as httpx does) still gets the 401, not a reset."""
    for _ in range(3):  # and the next request on this client is served
        response = http.post(
            keyed.v1 + "/chat/completions",
            content=b"{" + b" " * 5_000_000 + b"}",
            headers={"content-type": "application/json", "authorization": "Bearer wrong"},
        )
        assert response.status_code == 401
        assert http.get(keyed.base_url + "/healthz").status_code == 200


def fal_proxy_head(length: int) -> bytes:
    """A call fal's proxy refuses before reading its body (no target URL): an answer kept
    alive, not one of the guard's `Connection: close` refusals."""
    return (
        b"POST /api/fal/proxy HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + API_KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % length
    )


def test_a_body_trickled_after_an_answer_kept_alive_is_cut(keyed: RunningProxy) -> None:
    with socket.create_connection(("127.0.0.1", keyed.port)) as sock:
        sock.sendall(fal_proxy_head(1_000_000))
        answer, closed_after = trickle_until_closed(sock, b" ", 0.25)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    assert closed_after >= 0, "the connection was still open"


def test_a_body_sent_just_after_an_answer_kept_alive_keeps_the_connection(
    keyed: RunningProxy,
) -> None:
    """The rest of the body is skipped, and the connection serves the next request."""
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=5) as sock:
        sock.sendall(fal_proxy_head(2))
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        sock.sendall(b"{}")  # the body, after the answer
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
