"""/api/fal/proxy over HTTP with httpx: what is refused (and then never sent to fal), what is
relayed unchanged, and what every call gets (keys, failover, limits, metrics)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..support.asserts import wait_for
from ..support.redis import RedisServer
from ..support.servers import (
    API_KEY,
    API_KEY_2,
    CLIENT_FAL_KEY,
    FAL_KEY,
    FAL_KEY_2,
    REVOKED_FAL_KEY,
    RunningProxy,
)

PATH = "/api/fal/proxy"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SUBMIT = "https://queue.fal.run/fal-ai/flux/dev"
SUBMIT_LLM = "https://queue.fal.run/fal-ai/any-llm"
STREAM = "https://fal.run/fal-ai/any-llm/stream"
LLM_INPUT = {"prompt": "Say hello", "model": "google/gemini-2.5-flash"}


@pytest.fixture(scope="module")
def guarded(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    apps = "fal-ai/flux/*,fal-ai/any-llm"
    return proxy_factory(api_key=f"{API_KEY},{API_KEY_2}", fal_proxy_allowed_apps=apps)


def call(
    http: httpx.Client,
    proxy: RunningProxy,
    target: str | None,
    body: Any = None,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(AUTH if headers is None else headers)
    if target is not None:
        sent["x-fal-target-url"] = target
    return http.request(method, proxy.base_url + PATH, headers=sent, json=body)


def assert_fal_error(response: httpx.Response, status: int, words: str) -> None:
    """fal's error shape: `detail` (fal's platform, fal_client) and `message` (fal-js)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "message"} and body["detail"] == body["message"]
    assert words in body["detail"], body["detail"]


REFUSED_TARGETS = [
    (None, "Missing the x-fal-target-url"),
    ("", "Missing the x-fal-target-url"),
    ("not a url", "space"),
    ("https://evil.example/fal-ai/flux/dev", "host"),
    ("https://fal.ai/fal-ai/flux/dev", "host"),
    ("https://api.fal.ai/v1/models", "host"),
    ("https://fal.run.evil.example/fal-ai/flux/dev", "host"),
    ("https://user@fal.run/fal-ai/flux/dev", "host"),
    ("https://fal.run:8443/fal-ai/flux/dev", "host"),
    ("http://fal.run/fal-ai/flux/dev", "https"),
    ("ftp://fal.run/fal-ai/flux/dev", "https"),
    ("https://fal.run/fal-ai", "names no fal app"),
    ("https://fal.run/fal-ai/../admin/x", "dotted"),
    ("https://fal.run/fal-ai/%2e%2e/x", "escaped"),
    ("https://fal.run/fal-ai//flux", "empty"),
    ("https://fal.run/fal-ai\\flux/dev", "'\\'"),
    ("https://fal.run/fal-ai/flux/dev#x", "'#'"),
    ("https://rest.fal.ai/storage/upload/initiate", "storage upload calls"),
    ("https://rest.fal.ai/storage/upload/initiate?storage_type=gcs", "storage upload calls"),
    ("https://rest.fal.ai/storage/upload/initiate-multipart?storage_type=fal-cdn-v3", "storage"),
    ("https://rest.fal.ai/tokens/", "storage upload calls"),
    ("https://fal.run/" + "a/" * 2100, "longer than"),
]


@pytest.mark.parametrize(("target", "words"), REFUSED_TARGETS)
def test_targets_outside_fals_allow_list_are_refused_and_never_sent(
    http: httpx.Client,
    guarded: RunningProxy,
    sim_log: Callable[..., list[dict[str, Any]]],
    target: str | None,
    words: str,
) -> None:
    assert_fal_error(call(http, guarded, target, {"prompt": "x"}), 400, words)
    assert sim_log() == []


def test_apps_outside_the_allowed_globs_are_refused(
    http: httpx.Client, guarded: RunningProxy, sim_log: Callable[..., list[dict[str, Any]]]
) -> None:
    for target in (
        "https://queue.fal.run/fal-ai/whisper",
        "https://fal.run/fal-ai/kokoro/american-english/stream",
        "https://queue.fal.run/fal-ai/whisper/requests/abc/status",
    ):
        assert_fal_error(call(http, guarded, target, {}), 403, "FAL_PROXY_ALLOWED_APPS")
    assert sim_log() == []


@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [
        ({}, 401, "didn't provide an API key"),
        ({"Authorization": "Bearer wrong-key"}, 401, "Incorrect API key"),
        ({"x-api-key": "wrong-key"}, 401, "Incorrect API key"),
        ({"Authorization": f"Key {FAL_KEY}"}, 401, "not a fal key"),
    ],
)
def test_clients_without_the_proxys_key_are_refused(
    http: httpx.Client,
    guarded: RunningProxy,
    sim_log: Callable[..., list[dict[str, Any]]],
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    assert_fal_error(call(http, guarded, SUBMIT, {"prompt": "x"}, headers=headers), status, words)
    assert sim_log() == []


def test_the_key_may_come_as_x_api_key(
    http: httpx.Client, guarded: RunningProxy, sim_log: Callable[..., list[dict[str, Any]]]
) -> None:
    # Beside fal-js's own `Authorization: Key …`, which it sends when it has credentials.
    headers = {"x-api-key": API_KEY_2, "Authorization": "Key some-fal-key-of-the-client"}
    response = call(http, guarded, SUBMIT, {"prompt": "a fox"}, headers=headers)
    assert response.status_code == 200, response.text
    (submit,) = sim_log("submit")
    assert submit["key"] == FAL_KEY


def test_bad_bodies_are_refused_in_fals_shape(http: httpx.Client, guarded: RunningProxy) -> None:
    url = guarded.base_url + PATH
    headers = {**AUTH, "x-fal-target-url": SUBMIT, "content-type": "text/plain"}
    assert_fal_error(http.post(url, headers=headers, content=b"x"), 415, "Content-Type")
    assert http.delete(url, headers=AUTH).status_code == 405


def test_the_answer_comes_back_unchanged(
    http: httpx.Client, guarded: RunningProxy, sim_log: Callable[..., list[dict[str, Any]]]
) -> None:
    """A scripted fal error: status, body and headers as fal sent them (no retry: a 400)."""
    scripted = {"status": 400, "body": {"detail": "no", "extra": [1]}, "headers": {"x-fal-a": "b"}}
    prompt = "[[sim " + json.dumps(scripted) + "]]"
    response = call(http, guarded, SUBMIT, {"prompt": prompt})
    assert response.status_code == 400
    assert response.json() == {"detail": "no", "extra": [1]}
    assert response.headers["x-fal-a"] == "b"
    assert response.headers["x-fal-request-id"]
    (submit,) = sim_log("submit")
    assert submit["body"] == {"prompt": prompt}


def test_a_submit_is_retried_as_fals_clients_retry_it(
    http: httpx.Client,
    proxy_factory: Callable[..., RunningProxy],
    sim_log: Callable[..., list[dict[str, Any]]],
) -> None:
    """fal's 429 (its concurrency limit) is retried, and teaches the key pool its limit."""
    proxy = proxy_factory(api_key=API_KEY)
    prompt = '[[sim {"status": 429, "fail_times": 1, "tag": "fal-proxy-429"}]] a fox'
    response = call(http, proxy, SUBMIT_LLM, {**LLM_INPUT, "prompt": prompt})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "IN_QUEUE"
    assert [r["key"] for r in sim_log("submit")] == [FAL_KEY, FAL_KEY]
    metrics = http.get(proxy.base_url + "/metrics").text
    (limit,) = re.findall(r'fal_proxy_key_concurrency_limit\{key_index="0"\} (\S+)', metrics)
    assert limit != "+Inf"  # learned from the 429 (no limit before it)


def test_a_refused_key_fails_over_and_follow_ups_keep_the_submitting_key(
    http: httpx.Client,
    proxy_factory: Callable[..., RunningProxy],
    sim_log: Callable[..., list[dict[str, Any]]],
) -> None:
    proxy = proxy_factory(api_key=API_KEY, fal_key=f"{REVOKED_FAL_KEY},{FAL_KEY_2}")
    response = call(http, proxy, SUBMIT, {"prompt": "a fox"})
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]
    assert [r["key"] for r in sim_log("submit")] == [REVOKED_FAL_KEY, FAL_KEY_2]
    status = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}/status?logs=0"
    for _ in range(2):
        answer = call(http, proxy, status, method="GET")
        assert answer.status_code in (200, 202), answer.text
    result = call(
        http, proxy, f"https://queue.fal.run/fal-ai/flux/requests/{request_id}", method="GET"
    )
    assert result.json()["images"]
    assert [r["key"] for r in sim_log() if r["kind"] in ("status", "result")] == [FAL_KEY_2] * 3


def test_when_fal_refuses_every_server_key_the_client_gets_a_502(
    http: httpx.Client, proxy_factory: Callable[..., RunningProxy]
) -> None:
    proxy = proxy_factory(api_key=API_KEY, fal_key=REVOKED_FAL_KEY)
    response = call(http, proxy, SUBMIT, {"prompt": "a fox"})
    assert_fal_error(response, 502, "refused the server's key")


def test_only_the_submitting_key_may_follow_a_request_up(
    http: httpx.Client, guarded: RunningProxy, sim_log: Callable[..., list[dict[str, Any]]]
) -> None:
    request_id = call(http, guarded, SUBMIT, {"prompt": "a fox"}).json()["request_id"]
    status = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}/status"
    other = {"Authorization": f"Bearer {API_KEY_2}"}
    assert_fal_error(call(http, guarded, status, method="GET", headers=other), 404, request_id)
    assert sim_log("status") == []
    assert call(http, guarded, status, method="GET").status_code in (200, 202)


def test_pass_through_sends_the_clients_own_fal_key(
    http: httpx.Client,
    proxy_factory: Callable[..., RunningProxy],
    sim_log: Callable[..., list[dict[str, Any]]],
) -> None:
    proxy = proxy_factory(fal_key=None)
    for auth in (f"Key {CLIENT_FAL_KEY}", f"Bearer {CLIENT_FAL_KEY}"):
        response = call(http, proxy, SUBMIT, {"prompt": "a fox"}, headers={"Authorization": auth})
        assert response.status_code == 200, response.text
    assert [r["key"] for r in sim_log("submit")] == [CLIENT_FAL_KEY] * 2
    bad = call(http, proxy, SUBMIT, {"prompt": "a fox"}, headers={"Authorization": "Key nope"})
    assert bad.status_code == 401  # fal's own answer to a key it does not know, unchanged
    assert bad.json() == {"detail": "No user found for Key ID and Secret"}
    assert_fal_error(call(http, proxy, SUBMIT, {}, headers={}), 401, "didn't provide")


def test_limits_logs_and_metrics_count_every_call(
    http: httpx.Client,
    proxy_factory: Callable[..., RunningProxy],
    captured_logs: Any,
) -> None:
    proxy = proxy_factory(api_key=API_KEY, rate_limit_rpm=2)
    for _ in range(2):
        assert call(http, proxy, SUBMIT, {"prompt": "a fox"}).status_code == 200
    limited = call(http, proxy, SUBMIT, {"prompt": "a fox"})
    assert_fal_error(limited, 429, "Rate limit")
    assert int(limited.headers["retry-after"]) >= 1
    metrics = http.get(proxy.base_url + "/metrics").text
    counted = (
        'fal_proxy_requests_total{model="fal-ai/flux/dev",route="/api/fal/proxy",status="200"} 2.0'
    )
    assert counted in metrics
    assert 'fal_proxy_upstream_route_requests_total{endpoint="fal_proxy",route="submit"}' in metrics
    start = len(captured_logs.lines) - 20
    entries = [json.loads(line) for line in captured_logs.lines[start:]]
    lines = [e for e in entries if e.get("path") == PATH]
    assert any(e["route"] == "submit" and e["model"] == "fal-ai/flux/dev" for e in lines)


def test_a_stream_is_relayed_as_it_arrives_and_closed_with_the_client(
    guarded: RunningProxy, sim_log: Callable[..., list[dict[str, Any]]]
) -> None:
    """The second event comes a minute after the first: the first is read through the proxy
    while fal's stream is still open, and leaving closes fal's connection."""
    body = {**LLM_INPUT, "prompt": '[[sim {"events": 3, "interval_ms": 60000}]] Say hello'}
    headers = {**AUTH, "x-fal-target-url": STREAM, "accept": "text/event-stream"}
    url = guarded.base_url + PATH
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", url, headers=headers, json=body) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in r.headers
        first = next(r.iter_raw())
        assert first.startswith(b"event: event\ndata: {")
    (stream,) = sim_log("stream")
    assert stream["key"] == FAL_KEY
    wait_for(
        lambda: [r for r in sim_log("disconnect") if r["request_id"] == stream["request_id"]],
        what="fal's stream closed",
    )


def test_an_empty_allow_list_turns_the_endpoint_off(
    http: httpx.Client,
    proxy_factory: Callable[..., RunningProxy],
    sim_log: Callable[..., list[dict[str, Any]]],
) -> None:
    proxy = proxy_factory(api_key=API_KEY, fal_proxy_allowed_apps="")
    upload = "https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3"
    for target in (SUBMIT, upload):
        assert_fal_error(call(http, proxy, target, {"prompt": "x"}), 403, "is off here")
    assert sim_log() == []


def test_a_relay_cut_short_by_fal_is_never_a_clean_end(guarded: RunningProxy) -> None:
    """fal drops the connection after two events: the client's connection is dropped too,
    so that it cannot take the cut stream for a whole one."""
    body = {**LLM_INPUT, "prompt": '[[sim {"events": 5, "drop_at": 2}]] Say hello'}
    headers = {**AUTH, "x-fal-target-url": STREAM, "accept": "text/event-stream"}
    received: list[bytes] = []

    def read_all(response: httpx.Response) -> None:
        received.extend(response.iter_raw())

    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", guarded.base_url + PATH, headers=headers, json=body) as r,
    ):
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            read_all(r)
    assert b"".join(received).count(b"data: ") == 2


def test_a_follow_up_of_an_unknown_request_tries_each_key(
    http: httpx.Client,
    proxy_factory: Callable[..., RunningProxy],
    sim_log: Callable[..., list[dict[str, Any]]],
) -> None:
    """Submitted through another proxy: this one does not know which key did it, so it asks
    with each key while fal refuses (here the first key is one fal does not know)."""
    request_id = call(http, proxy_factory(api_key=API_KEY), SUBMIT, {"prompt": "a fox"}).json()[
        "request_id"
    ]
    other = proxy_factory(api_key=API_KEY, fal_key=f"{REVOKED_FAL_KEY},{FAL_KEY}")
    result = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}"
    answer = call(http, other, result, method="GET")
    assert answer.status_code == 200, answer.text
    assert answer.json()["images"]
    assert [r["key"] for r in sim_log("result")] == [REVOKED_FAL_KEY, FAL_KEY]
    metrics = http.get(other.base_url + "/metrics").text
    assert 'fal_proxy_key_healthy{key_index="0"} 0.0' in metrics  # fal refused it: benched


def test_replicas_share_who_submitted_what_through_redis(
    http: httpx.Client,
    proxy_factory: Callable[..., RunningProxy],
    sim_log: Callable[..., list[dict[str, Any]]],
) -> None:
    server = RedisServer()
    server.start()
    try:
        keys = f"{API_KEY},{API_KEY_2}"
        one = proxy_factory(
            api_key=keys, redis_url=server.url, fal_key=f"{REVOKED_FAL_KEY},{FAL_KEY}"
        )
        two = proxy_factory(api_key=keys, redis_url=server.url, fal_key=f"{FAL_KEY_2},{FAL_KEY}")
        for replica in (one, two):
            redis = replica.state.upstream.redis
            wait_for(lambda redis=redis: redis is not None and redis.up, what="Redis up")
        request_id = call(http, one, SUBMIT, {"prompt": "a fox"}).json()["request_id"]
        status = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}/status"
        other_key = {"Authorization": f"Bearer {API_KEY_2}"}
        assert_fal_error(call(http, two, status, method="GET", headers=other_key), 404, request_id)
        assert sim_log("status") == []
        assert call(http, two, status, method="GET").status_code in (200, 202)
        # Key #1 submitted it (fal refused #0): the second replica asks with its own key #1,
        # not with its least-loaded key #0.
        assert [r["key"] for r in sim_log("submit")] == [REVOKED_FAL_KEY, FAL_KEY]
        assert [r["key"] for r in sim_log("status")] == [FAL_KEY]
    finally:
        server.close()


def test_a_browser_on_an_allowed_origin_may_call_and_read_fals_headers(
    http: httpx.Client, proxy_factory: Callable[..., RunningProxy]
) -> None:
    """fal's client in a page on another origin: the preflight of its cancel (PUT, with the
    target header) passes, and the answer exposes the request id fal-js reads."""
    origin = "https://app.example"
    proxy = proxy_factory(api_key=API_KEY, cors_origins=origin)
    preflight = http.options(
        proxy.base_url + PATH,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type, x-fal-target-url",
        },
    )
    assert preflight.status_code == 200
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    answer = call(http, proxy, SUBMIT, {"prompt": "a fox"}, headers={**AUTH, "Origin": origin})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == origin
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "x-fal-request-id" in exposed and "x-fal-request-timeout-type" in exposed
    refused = call(http, proxy, SUBMIT, {}, headers={**AUTH, "Origin": "https://evil.example"})
    assert_fal_error(refused, 403, "CORS_ORIGINS")


def test_a_relay_client_that_never_reads_is_dropped_and_its_key_slot_freed(
    http: httpx.Client,
    proxy_factory: Callable[..., RunningProxy],
    sim_log: Callable[..., list[dict[str, Any]]],
) -> None:
    """About 6 MB of stream, more than loopback's buffers hold for a client that reads
    nothing: after WRITE_TIMEOUT its connection is dropped, fal's closed, the lease given back."""
    proxy = proxy_factory(api_key=API_KEY, write_timeout=1, fal_key_concurrency=1)
    text = " ".join(["w" * 1000] * 6000)
    directive = json.dumps({"text": text, "events": 16, "interval_ms": 0})
    raw = json.dumps({**LLM_INPUT, "prompt": f"[[sim {directive}]] Say hello"}).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"x-fal-target-url: {STREAM}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", proxy.port))
    try:
        sock.sendall(head + raw)
        wait_for(lambda: sim_log("disconnect"), within=10, what="fal's stream closed")
        metrics = http.get(proxy.base_url + "/metrics").text
        assert 'fal_proxy_key_in_flight{key_index="0"} 0.0' in metrics
        again = call(
            http, proxy, STREAM, LLM_INPUT, headers={**AUTH, "accept": "text/event-stream"}
        )
        assert again.status_code == 200
    finally:
        sock.close()
