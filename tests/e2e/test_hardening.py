"""What a hostile or careless client cannot do: huge or absurd bodies, out-of-range numbers,
log flooding, cross-site requests, slow or oversized heads, clients that stop reading."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fal_openai_proxy.base.settings import Settings

from ..conftest import CapturedLogs
from ..support.asserts import error_of
from ..support.chat import MODEL, Records, sim
from ..support.servers import API_KEY, CLIENT_FAL_KEY, RunningProxy

JSON = {"content-type": "application/json"}


def chat_url(running: RunningProxy) -> str:
    return running.base_url + "/v1/chat/completions"


def body(**fields: Any) -> bytes:
    """A chat body; json.dumps, as orjson cannot write integers beyond 64 bits."""
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **fields}
    return json.dumps(payload).encode()


# -- item 7: every number bounded ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": 2**64}, "max_tokens"),
        ({"max_completion_tokens": 2**70}, "max_completion_tokens"),
        ({"seed": 2**64}, "seed"),
        ({"seed": -(2**64)}, "seed"),
        ({"n": 2**64}, "n"),
        ({"top_logprobs": 2**64}, "top_logprobs"),
        ({"reasoning": {"max_tokens": 2**64}}, "reasoning.max_tokens"),
        ({"logit_bias": {"50256": 2**64}}, "logit_bias.50256"),
    ],
)
def test_huge_numbers_are_400_naming_the_param(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records, fields: dict[str, Any], param: str
) -> None:
    error = error_of(http.post(chat_url(proxy), content=body(**fields), headers=JSON), 400)
    assert error["param"] == param
    assert sim_log() == []


def test_infinite_temperature_is_400(proxy: RunningProxy, http: httpx.Client) -> None:
    raw = body().replace(b'"model"', b'"temperature": 1e400, "model"')
    assert error_of(http.post(chat_url(proxy), content=raw, headers=JSON), 400)["param"] == (
        "temperature"
    )


# -- items 2 and 4: lists, strings, model ids ---------------------------------------------


def test_model_id_over_the_cap_is_400_and_never_floods_the_log(
    proxy: RunningProxy, http: httpx.Client, captured_logs: CapturedLogs, sim_log: Records
) -> None:
    model = "x/" + "m" * 1_000_000
    before = len(captured_logs.lines)
    raw = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    error = error_of(http.post(chat_url(proxy), content=raw, headers=JSON), 400)
    assert error["param"] == "model"
    assert sim_log() == []
    new = captured_logs.lines[before:]
    assert new and max(len(line) for line in new) < 4000


def test_log_fields_are_clipped_whatever_the_client_sends(
    proxy: RunningProxy, http: httpx.Client, captured_logs: CapturedLogs
) -> None:
    before = len(captured_logs.lines)
    http.get(proxy.base_url + "/v1/" + "p" * 50_000, headers={"x-request-id": "r" * 50_000})
    new = captured_logs.lines[before:]
    assert new and max(len(line) for line in new) < 4000


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stop": ["s"] * 5}, "stop"),
        ({"stop": ["s" * 5000]}, "stop[0]"),
        ({"tools": [{"type": "function"}] * 200}, "tools"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * 1001}]},
            "messages[0].content",
        ),
        ({"messages": [{"role": "user", "content": "x"}] * 1001}, "messages"),
    ],
    ids=["stop", "stop-length", "tools", "content-parts", "messages"],
)
def test_list_and_string_limits_are_400_naming_the_param(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records, fields: dict[str, Any], param: str
) -> None:
    error = error_of(http.post(chat_url(proxy), content=body(**fields), headers=JSON), 400)
    assert error["param"] == param
    assert sim_log() == []


HUGE_BODIES = {
    "messages": b'{"model":"m","messages":['
    + b",".join([b'{"role":"user","content":"x"}'] * 650_000)
    + b"]}",
    "content-parts": b'{"model":"m","messages":[{"role":"user","content":['
    + b",".join([b'{"type":"text","text":"x"}'] * 750_000)
    + b"]}]}",
    "unknown-field": b'{"model":"m","messages":[{"role":"user","content":"x"}],"junk":['
    + b",".join([b"1"] * 9_000_000)
    + b"]}",
}


@pytest.mark.parametrize("kind", sorted(HUGE_BODIES))
async def test_a_20_mib_body_of_tiny_items_is_refused_and_the_loop_stays_responsive(
    proxy_factory: Callable[..., RunningProxy], kind: str
) -> None:
    running = proxy_factory(max_body_bytes=21 * 1024 * 1024)
    raw = HUGE_BODIES[kind]
    async with httpx.AsyncClient(base_url=running.base_url, timeout=60) as client:
        await client.get("/healthz")
        slowest = 0.0

        async def probe() -> None:
            nonlocal slowest
            while True:
                started = time.perf_counter()
                await client.get("/healthz")
                slowest = max(slowest, time.perf_counter() - started)
                await asyncio.sleep(0.01)

        prober = asyncio.ensure_future(probe())
        try:
            response = await client.post("/v1/chat/completions", content=raw, headers=JSON)
        finally:
            prober.cancel()
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "request_too_complex"
    # Parsed, the body takes seconds and a gigabyte; the pre-scan takes tens of ms (a 2-core
    # machine shared with other work gets a margin).
    assert slowest < 0.5, slowest


def test_many_commas_inside_strings_are_fine(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(max_body_bytes=21 * 1024 * 1024)
    text = 'a,b,\\"c\\",d\\\\,e\n' * 200_000  # a CSV pasted into a prompt, with escapes
    raw = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": text}]})
    response = http.post(chat_url(running), content=raw, headers=JSON)
    assert response.status_code == 200, response.text[:300]


# -- item 3: cross-site requests --------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_json_endpoint_needs_application_json(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = http.post(chat_url(proxy), content=body(), headers=headers)
    assert error_of(response, 415)["code"] == "unsupported_media_type"
    assert sim_log() == []


def test_json_with_charset_is_fine(proxy: RunningProxy, http: httpx.Client) -> None:
    headers = {"content-type": "application/json; charset=utf-8"}
    assert http.post(chat_url(proxy), content=body(), headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models", "/metrics"])
def test_rebinding_host_is_refused_on_loopback(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records, path: str
) -> None:
    headers = {**JSON, "host": "attacker.example:3000"}
    if path.endswith("completions"):
        response = http.post(proxy.base_url + path, content=body(), headers=headers)
    else:
        response = http.get(proxy.base_url + path, headers=headers)
    assert error_of(response, 421)["code"] == "host_not_allowed"
    assert sim_log() == []


@pytest.mark.parametrize("host", ["localhost:3000", "127.0.0.1", "[::1]:8080", "LOCALHOST"])
def test_loopback_hosts_are_served(proxy: RunningProxy, http: httpx.Client, host: str) -> None:
    assert http.get(proxy.v1 + "/models", headers={"host": host}).status_code == 200


def test_allowed_hosts_setting(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(allowed_hosts="api.example.com")
    assert http.get(running.v1 + "/models", headers={"host": "api.example.com"}).status_code == 200
    assert http.get(running.v1 + "/models", headers={"host": "localhost"}).status_code == 421


def test_cross_site_origin_is_refused(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records
) -> None:
    headers = {**JSON, "origin": "https://evil.example"}
    response = http.post(chat_url(proxy), content=body(), headers=headers)
    assert error_of(response, 403)["type"] == "permission_error"
    assert sim_log() == []
    same = {**JSON, "origin": proxy.base_url}  # a page of this very host is not cross-site
    assert http.post(chat_url(proxy), content=body(), headers=same).status_code == 200


def test_cors_origins_are_allowed(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(cors_origins="https://app.example")
    ok = {**JSON, "origin": "https://app.example"}
    response = http.post(chat_url(running), content=body(), headers=ok)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    bad = {**JSON, "origin": "https://evil.example"}
    assert http.post(chat_url(running), content=body(), headers=bad).status_code == 403


# -- item 10: forwarded headers -----------------------------------------------------------


def test_x_forwarded_for_is_not_trusted_by_default(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(rate_limit_rpm=1)
    first = http.post(
        chat_url(running), content=body(), headers={**JSON, "x-forwarded-for": "10.0.0.1"}
    )
    assert first.status_code == 200
    second = http.post(
        chat_url(running), content=body(), headers={**JSON, "x-forwarded-for": "10.0.0.2"}
    )
    assert error_of(second, 429)["code"] == "rate_limit_exceeded"


def test_x_forwarded_for_from_a_trusted_proxy(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(rate_limit_rpm=1, forwarded_allow_ips="127.0.0.1")
    for address in ("10.0.0.1", "10.0.0.2"):
        headers = {**JSON, "x-forwarded-for": address}
        assert http.post(chat_url(running), content=body(), headers=headers).status_code == 200


# -- item 8: a client that leaves mid-body ------------------------------------------------


def test_client_leaving_mid_body_is_499_at_info(
    proxy: RunningProxy, captured_logs: CapturedLogs
) -> None:
    before = len(captured_logs.lines)
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model":'
        )
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in captured_logs.lines[before:]]
        done = [r for r in lines if r.get("msg") == "request"]
        if done:
            break
        time.sleep(0.05)
    assert done and done[0]["status"] == 499, lines
    assert all(r["level"] == "info" for r in lines), lines
    assert not any("exc" in r for r in lines)


# -- item 1: heads and idle connections ---------------------------------------------------


def raw_exchange(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send `data`, read until the server closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def test_oversized_head_is_431_without_buffering_it(proxy: RunningProxy) -> None:
    started = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (4 << 20)
    answer = raw_exchange(proxy.port, head)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b"request_header_fields_too_large" in answer
    assert time.monotonic() - started < 3
    assert httpx.get(proxy.base_url + "/healthz").status_code == 200


def test_a_head_just_under_the_cap_with_a_body_in_the_same_packet(
    proxy: RunningProxy, http: httpx.Client
) -> None:
    pad = "p" * (60 * 1024)
    raw = body(pad=pad, text="x" * 200_000)
    response = http.post(chat_url(proxy), content=raw, headers={**JSON, "x-pad": pad})
    assert response.status_code == 200


def test_trickling_head_and_idle_socket_are_cut(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(header_timeout=1)
    idle = socket.create_connection(("127.0.0.1", running.port))
    trickle = socket.create_connection(("127.0.0.1", running.port))
    started = time.monotonic()
    closed: dict[str, float] = {}
    trickle.sendall(b"GET /healthz HTTP/1.1\r\n")
    idle.settimeout(0.2)
    trickle.settimeout(0.2)
    while len(closed) < 2 and time.monotonic() - started < 6:
        with contextlib.suppress(OSError):
            trickle.sendall(b"X-A: b\r\n")
        for name, sock in (("idle", idle), ("trickle", trickle)):
            if name in closed:
                continue
            try:
                if sock.recv(100) == b"":
                    closed[name] = time.monotonic() - started
            except TimeoutError:
                pass
            except OSError:
                closed[name] = time.monotonic() - started
        # Meanwhile the server serves others.
        assert http.get(running.base_url + "/healthz").status_code == 200
    idle.close()
    trickle.close()
    assert set(closed) == {"idle", "trickle"}, closed
    assert all(0.8 < t < 3 for t in closed.values()), closed


def test_body_timeout_is_408(proxy_factory: Callable[..., RunningProxy], sim_log: Records) -> None:
    running = proxy_factory(body_timeout=0.5)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        sock.sendall(head)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 3
    assert sim_log() == []


def test_connections_over_the_cap_get_503(
    proxy_factory: Callable[..., RunningProxy],
) -> None:
    running = proxy_factory(max_connections=3)
    held = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        answer = raw_exchange(running.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(running.base_url + "/healthz").status_code == 200


# -- item 5: a stream client that stops reading --------------------------------------------


def test_stream_client_that_never_reads_is_dropped_and_its_key_slot_freed(
    proxy_factory: Callable[..., RunningProxy], sim_log: Records
) -> None:
    running = proxy_factory(write_timeout=1, fal_key_concurrency=1)
    # About 6 MB of answer: more than loopback's socket buffers hold for a client that
    # never reads (long words keep the simulator's event split cheap).
    text = " ".join(["w" * 1000] * 6000)
    directive = sim({"text": text, "events": 16, "interval_ms": 0})
    raw = body(stream=True, messages=[{"role": "user", "content": "hi " + directive}])
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(raw)).encode() + b"\r\n\r\n"
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", running.port))
    try:
        sock.sendall(head + raw)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not sim_log("disconnect"):
            time.sleep(0.1)
        assert sim_log("disconnect"), "the fal stream was never closed"
        metrics = httpx.get(running.base_url + "/metrics").text
        assert 'fal_proxy_key_in_flight{key_index="0"} 0.0' in metrics
        # The key's one slot is free again: another request goes through at once.
        response = httpx.post(chat_url(running), content=body(), headers=JSON, timeout=5)
        assert response.status_code == 200
    finally:
        sock.close()


# -- item 9: Retry-After from fal, end to end ----------------------------------------------


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf", "nan", "9" * 40, "Infinity"])
@pytest.mark.parametrize("mode", ["server-key", "pass-through"])
def test_absurd_retry_after_from_fal_is_bounded(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client, value: str, mode: str
) -> None:
    if mode == "server-key":
        running = proxy_factory(retry_budget=0.2, key_rate_limit_cooldown=0)
        headers = JSON
    else:
        running = proxy_factory(fal_key=None, retry_budget=0.2)
        headers = {**JSON, "authorization": f"Bearer {CLIENT_FAL_KEY}"}
    directive = sim({"status": 429, "headers": {"Retry-After": value}})
    raw = body(messages=[{"role": "user", "content": directive}])
    for stream in (False, True):
        streamed = raw.replace(
            b'"model"', b'"stream": ' + str(stream).lower().encode() + b', "model"'
        )
        response = http.post(chat_url(running), content=streamed, headers=headers)
        error_of(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 3600
    # Later requests are answered: a 200 where no key is left out for the header (pass-through
    # has no key to leave out; a header that is not a finite number is ignored), else a
    # bounded 429; never a 500.
    later = http.post(chat_url(running), content=body(), headers=headers)
    if mode == "pass-through" or value != "9" * 40:
        assert later.status_code == 200, later.text
    else:
        assert later.status_code in (200, 429), later.text
        if later.status_code == 429:
            assert 1 <= int(later.headers["retry-after"]) <= 3600


def test_logged_prompts_are_clipped_too(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client, captured_logs: CapturedLogs
) -> None:
    running = proxy_factory(log_prompts=True)
    before = len(captured_logs.lines)
    raw = body(messages=[{"role": "user", "content": "y" * 2_000_000}])
    assert http.post(chat_url(running), content=raw, headers=JSON).status_code == 200
    new = captured_logs.lines[before:]
    assert any('"prompt"' in line for line in new)
    assert max(len(line) for line in new) < 200_000


# -- issue 14, security item 7: /metrics, /docs and /openapi.json behind the client key -----------


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_metrics_and_docs_can_require_the_client_key(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client, host: str
) -> None:
    running = proxy_factory(host=host, api_key=API_KEY, require_key_for_metrics_and_docs=True)
    key = {"authorization": f"Bearer {API_KEY}"}
    for path in ("/metrics", "/docs", "/openapi.json"):
        open_to_all = http.get(running.base_url + path)
        if host == "0.0.0.0":
            assert error_of(open_to_all, 401)["code"] == "missing_api_key"
            wrong = http.get(running.base_url + path, headers={"authorization": "Bearer no"})
            assert error_of(wrong, 401)["code"] == "invalid_api_key"
        else:  # loopback: only this machine can ask
            assert open_to_all.status_code == 200
        assert http.get(running.base_url + path, headers=key).status_code == 200
    assert http.get(running.base_url + "/healthz").status_code == 200  # probes need no key


def test_requiring_a_key_for_metrics_needs_api_key() -> None:
    settings = Settings(_env_file=None, fal_key="k", require_key_for_metrics_and_docs=True)  # type: ignore[call-arg]
    assert any("REQUIRE_KEY_FOR_METRICS_AND_DOCS" in p for p in settings.startup_problems())
