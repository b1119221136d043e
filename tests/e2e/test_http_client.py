"""The proxy's own HTTP/1.1 client, against the simulator: keep-alive reuse and failures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import pytest
import trustme
import uvicorn

from fal_openai_proxy.fal import http
from fal_openai_proxy.fal.errors import (
    FalBrokenError,
    FalConnectError,
    FalRequestInvalid,
    FalTLSError,
    FalUnsafeURL,
)
from fal_openai_proxy.simulator import SimulatorConfig, create_simulator_app
from fal_openai_proxy.simulator.server import SimulatorThread, bind

from ..support.processes import free_port
from ..support.servers import FAL_KEY

HEADERS = {"Authorization": f"Key {FAL_KEY}", "Content-Type": "application/json"}


def body(text: str) -> bytes:
    return json.dumps({"model": "m/x", "prompt": text}).encode()


async def test_sequential_requests_share_one_connection(
    sim: SimulatorThread, connections_made: list[int]
) -> None:
    client = http.HttpClient(connect_timeout=5, max_idle_per_host=10, user_agent="test")
    for i in range(5):
        reply = await client.send(
            "POST", sim.run_url + "/openrouter/router", HEADERS, body(f"q{i}")
        )
        assert reply.status == 200
        assert json.loads(reply.body)["output"] == f"Simulated answer to: q{i}"
        assert reply.headers["content-type"].startswith("application/json")
    assert len(connections_made) == 1
    await client.close()


async def test_queue_sequence_reuses_the_status_stream_connection(
    sim: SimulatorThread, connections_made: list[int]
) -> None:
    client = http.HttpClient(connect_timeout=5, max_idle_per_host=10, user_agent="test")
    for i in range(3):
        submitted = await client.send(
            "POST", sim.queue_url + "/openrouter/router", HEADERS, body(f"s{i}")
        )
        urls = json.loads(submitted.body)
        status = await client.open("GET", urls["status_url"] + "/stream?logs=0", HEADERS)
        seen = b""
        while b"COMPLETED" not in seen:
            seen += await status.read_chunk()
        status.finish_in_background()  # the stream's end comes a moment later
        await asyncio.sleep(0.02)
        result = await client.send("GET", urls["response_url"], HEADERS)
        assert json.loads(result.body)["output"] == f"Simulated answer to: s{i}"
    assert len(connections_made) == 1
    await client.close()


async def test_concurrent_requests_open_their_own_connections(
    sim: SimulatorThread, connections_made: list[int]
) -> None:
    client = http.HttpClient(connect_timeout=5, max_idle_per_host=10, user_agent="test")
    slow = body('slow [[sim {"latency_ms": 50}]]')
    url = sim.run_url + "/openrouter/router"
    replies = await asyncio.gather(*(client.send("POST", url, HEADERS, slow) for _ in range(4)))
    assert [r.status for r in replies] == [200] * 4
    assert len(connections_made) == 4
    await client.send("POST", url, HEADERS, body("after"))
    assert len(connections_made) == 4  # taken from the pool
    await client.close()


async def test_dropped_body_is_a_broken_error(sim: SimulatorThread) -> None:
    client = http.HttpClient(connect_timeout=5, max_idle_per_host=10, user_agent="test")
    response = await client.open(
        "POST", sim.run_url + "/openrouter/router/stream", HEADERS, body('d [[sim {"drop_at": 1}]]')
    )
    assert response.status == 200
    with pytest.raises(FalBrokenError):
        await response.read_body()
    await client.close()


async def test_closed_port_is_a_connect_error() -> None:
    client = http.HttpClient(connect_timeout=2, max_idle_per_host=10, user_agent="test")
    with pytest.raises(FalConnectError):
        await client.send("GET", f"http://127.0.0.1:{free_port()}/x", {})
    with pytest.raises(FalUnsafeURL):  # a URL nothing can fetch: fal's fault, not a retry
        await client.send("GET", "ftp://example.com/x", {})


@pytest.mark.parametrize(
    ("url", "headers", "error"),
    [
        ("http://127.0.0.1:9/x", {"Authorization": "Key abc\r\nX-Injected: 1"}, FalRequestInvalid),
        ("http://127.0.0.1:9/x", {"Authorization": "Key abc\nX-Injected: 1"}, FalRequestInvalid),
        ("http://127.0.0.1:9/x HTTP/1.1\r\nX-Injected: 1\r\n", {}, FalUnsafeURL),
        ("http://127.0.0.1:9/x HTTP/1.0", {}, FalUnsafeURL),
        ("http://127.0.0.1:9/x", {"Authorization": "Key \u2603"}, FalRequestInvalid),
    ],
    ids=["crlf-header", "lf-header", "crlf-url", "space-url", "non-latin-1"],
)
async def test_line_breaks_never_reach_the_wire(
    url: str, headers: dict[str, str], error: type[Exception]
) -> None:
    """A client's key (pass-through) or a URL from fal must not split the request. A bad URL
    is fal's (every URL the proxy calls is configured, checked, or fal's): FalUnsafeURL, a
    502 for the client; a bad key is the client's: FalRequestInvalid, a 400."""
    client = http.HttpClient(connect_timeout=2, max_idle_per_host=10, user_agent="test")
    with pytest.raises(error):
        await client.send("GET", url, headers)


@pytest.fixture(scope="module")
def tls_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The simulator behind TLS with a throwaway CA: (base URL, CA file)."""
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
        str(folder / "server.pem")
    )
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(
        create_simulator_app(SimulatorConfig(keys={FAL_KEY})),
        log_level="warning",
        ssl_certfile=str(folder / "server.pem"),
        ssl_keyfile=str(folder / "server.pem"),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"https://localhost:{sock.getsockname()[1]}", str(folder / "ca.pem")
    server.should_exit = True
    thread.join(timeout=10)


async def test_https_with_a_trusted_certificate(
    tls_simulator: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, ca_file = tls_simulator
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # read by ssl.create_default_context()
    client = http.HttpClient(connect_timeout=5, max_idle_per_host=10, user_agent="test")
    for i in range(2):
        reply = await client.send("POST", f"{base}/run/openrouter/router", HEADERS, body(f"tls{i}"))
        assert reply.status == 200
        assert json.loads(reply.body)["output"] == f"Simulated answer to: tls{i}"
    await client.close()


async def test_https_with_an_untrusted_certificate_is_refused(
    tls_simulator: tuple[str, str],
) -> None:
    base, _ = tls_simulator
    client = http.HttpClient(connect_timeout=5, max_idle_per_host=10, user_agent="test")
    with pytest.raises(FalTLSError):  # a FalConnectError that is not retried
        await client.send("POST", f"{base}/run/openrouter/router", HEADERS, body("x"))
