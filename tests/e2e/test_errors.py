"""Every failure reaches the client OpenAI-shaped: `{"error": {message, type, param, code}}`.

Request validation, unsupported fields, routing, and each way fal can fail (HTTP statuses,
ingress errors, timeouts, an unreachable fal, a queue job that completed with an error).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from ..conftest import CapturedLogs
from ..support.asserts import error_of
from ..support.chat import MODEL, Records, ask, of, sim, tagged
from ..support.servers import RunningProxy


@pytest.fixture(scope="module")
def fast(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    """Server-key mode with short timeouts and no key cooldowns (errors must not linger).
    Every model on the prompt route, which refuses what it cannot honour."""
    return proxy_factory(
        model_routes="*=prompt",
        retry_budget=0.5,
        connect_timeout=0.5,
        first_event_timeout=0.5,
        idle_timeout=0.5,
        request_timeout=1,
        key_auth_cooldown=0,
        key_rate_limit_cooldown=0,
        max_body_bytes=64 * 1024,
        max_messages=5,
    )


@pytest.fixture
def client(fast: RunningProxy, make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client(fast)


def url(running: RunningProxy) -> str:
    return running.base_url + "/v1/chat/completions"


# -- request validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"{not json", "invalid_json"), (b"[1, 2]", "invalid_json"), (b'"text"', "invalid_json")],
    ids=["malformed", "array", "string"],
)
def test_body_that_is_not_a_json_object(
    fast: RunningProxy, http: httpx.Client, sim_log: Records, content: bytes, code: str
) -> None:
    response = http.post(url(fast), content=content, headers={"content-type": "application/json"})
    error = error_of(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert sim_log() == []


VALID: dict[str, Any] = {"model": MODEL, "messages": ask("hello")}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": ask("hi")}, "model", "missing_required_parameter"),
        ({"model": MODEL}, "messages", "missing_required_parameter"),
        ({"model": MODEL, "messages": []}, "messages", "empty_array"),
        (
            {"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]},
            "messages[0].role",
            "invalid_value",
        ),
        ({**VALID, "temperature": "hot"}, "temperature", "invalid_type"),
        ({**VALID, "temperature": 3}, "temperature", "invalid_value"),
        ({**VALID, "top_p": 1.5}, "top_p", "invalid_value"),
        ({**VALID, "max_tokens": 0}, "max_tokens", "invalid_value"),
        ({**VALID, "presence_penalty": -3}, "presence_penalty", "invalid_value"),
        ({**VALID, "stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
        ({**VALID, "stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
    ],
    ids=[
        "no-model",
        "no-messages",
        "empty-messages",
        "bad-role",
        "temperature-type",
        "temperature-range",
        "top_p-range",
        "max_tokens-range",
        "presence_penalty-range",
        "too-many-stops",
        "stream_options-without-stream",
    ],
)
def test_invalid_field_names_the_param(
    fast: RunningProxy,
    http: httpx.Client,
    sim_log: Records,
    body: dict[str, Any],
    param: str,
    code: str,
) -> None:
    error = error_of(http.post(url(fast), json=body), 400)
    assert error["param"] == param
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert sim_log() == []


def test_too_many_messages_and_too_large_body(
    fast: RunningProxy, http: httpx.Client, sim_log: Records
) -> None:
    many = {"model": MODEL, "messages": ask("x") * 6}
    error = error_of(http.post(url(fast), json=many), 400)
    assert (error["param"], error["code"]) == ("messages", "array_above_max_length")
    huge = {"model": MODEL, "messages": ask("x" * 70_000)}
    error = error_of(http.post(url(fast), json=huge), 413)
    assert error["code"] == "request_too_large"
    assert sim_log() == []


UNSUPPORTED: list[tuple[str, dict[str, Any]]] = [
    ("n", {"n": 2}),
    ("tools", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
    ("functions", {"functions": [{"name": "f", "parameters": {}}]}),
    ("logprobs", {"logprobs": True}),
    ("response_format", {"response_format": {"type": "json_object"}}),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("param", "extra"), UNSUPPORTED, ids=[p for p, _ in UNSUPPORTED])
def test_unsupported_parameter_via_sdk(
    client: openai.OpenAI, sim_log: Records, param: str, extra: dict[str, Any], stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask("hi"), stream=stream, **extra)
    exc = caught.value
    assert exc.status_code == 400
    assert exc.param == param
    assert exc.code == "unsupported_parameter"
    assert exc.type == "invalid_request_error"
    assert sim_log() == []


@pytest.mark.parametrize(("param", "extra"), UNSUPPORTED, ids=[p for p, _ in UNSUPPORTED])
def test_stream_with_unsupported_field_is_json_400_before_any_sse(
    fast: RunningProxy, http: httpx.Client, sim_log: Records, param: str, extra: dict[str, Any]
) -> None:
    body = {**VALID, "stream": True, **extra}
    with http.stream("POST", url(fast), json=body) as response:
        raw = response.read()
    assert not raw.startswith(b"data:") and b"data: " not in raw
    assert "text/event-stream" not in response.headers["content-type"]
    error = error_of(response, 400)
    assert (error["param"], error["code"]) == (param, "unsupported_parameter")
    assert sim_log() == []


def test_stream_with_invalid_field_is_json_400(
    fast: RunningProxy, http: httpx.Client, sim_log: Records
) -> None:
    response = http.post(url(fast), json={**VALID, "stream": True, "temperature": "hot"})
    error = error_of(response, 400)
    assert error["param"] == "temperature"
    assert sim_log() == []


# -- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/v1/chat/completion", "/nowhere"])
def test_unknown_route_is_json_404(fast: RunningProxy, http: httpx.Client, path: str) -> None:
    error = error_of(http.get(fast.base_url + path), 404)
    assert error["code"] == "unknown_url"
    assert path in error["message"]


def test_unknown_route_via_sdk(
    fast: RunningProxy, make_client: Callable[..., openai.OpenAI]
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        make_client(fast).moderations.create(input="y")  # no such endpoint here
    assert caught.value.code == "unknown_url"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/chat/completions"), ("PUT", "/v1/chat/completions"), ("POST", "/v1/models")],
)
def test_wrong_method_is_json_405(
    fast: RunningProxy, http: httpx.Client, method: str, path: str
) -> None:
    error_of(http.request(method, fast.base_url + path), 405)


# -- fal's HTTP errors ------------------------------------------------------------------------

FAL_422 = {
    "status": 422,
    "body": {"detail": [{"loc": ["body", "prompt"], "msg": "too long", "type": "value_error"}]},
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_fal_422_is_400_with_fals_message(
    client: openai.OpenAI, sim_log: Records, stream: bool
) -> None:
    token, text = tagged(sim(FAL_422))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text), stream=stream)
    exc = caught.value
    assert exc.status_code == 400
    assert exc.type == "invalid_request_error"
    assert "too long" in exc.message
    assert "prompt" in exc.message
    assert len(of(sim_log("stream" if stream else "submit"), token)) == 1  # not retried


def _new_log_lines(captured: CapturedLogs, start: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.lines[start:]]


_UNKNOWN_KEY = f"unknown-test-key-{uuid.uuid4().hex}"  # a key the simulator does not know
_UNKNOWN_KEY_PROXY: list[RunningProxy] = []


def unknown_key_proxy(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    if not _UNKNOWN_KEY_PROXY:
        _UNKNOWN_KEY_PROXY.append(
            proxy_factory(
                fal_key=_UNKNOWN_KEY, key_auth_cooldown=0, retry_budget=0.5, first_event_timeout=1
            )
        )
    return _UNKNOWN_KEY_PROXY[0]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_fal_401_for_the_server_key_is_502_and_logged_by_index(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    captured_logs: CapturedLogs,
    sim_log: Records,
    stream: bool,
) -> None:
    running = unknown_key_proxy(proxy_factory)
    unknown_key = _UNKNOWN_KEY
    start = len(captured_logs.lines)
    with pytest.raises(openai.InternalServerError) as caught:
        make_client(running).chat.completions.create(
            model=MODEL, messages=ask("who am I"), stream=stream
        )
    exc = caught.value
    assert exc.status_code == 502
    assert exc.type == "upstream_error"
    assert exc.code == "upstream_auth"
    assert unknown_key not in exc.message
    records = sim_log("stream" if stream else "submit")
    assert len(records) == 1
    assert records[0]["key"] == unknown_key  # fal really was asked with that key
    lines = captured_logs.lines[start:]
    assert not [line for line in lines if unknown_key in line], "the key was logged"
    messages = [entry["msg"] for entry in _new_log_lines(captured_logs, start)]
    assert any("#0" in m and "refused" in m for m in messages), messages


def test_fal_403_for_the_server_key_is_502(
    client: openai.OpenAI, captured_logs: CapturedLogs, sim_log: Records
) -> None:
    start = len(captured_logs.lines)
    token, text = tagged(sim({"status": 403, "body": {"detail": "Forbidden"}}))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text))
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_auth"
    assert len(of(sim_log("submit"), token)) == 1
    messages = [entry["msg"] for entry in _new_log_lines(captured_logs, start)]
    assert any("#0" in m and "403" in m for m in messages), messages


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_fal_429_not_retryable_is_429_with_retry_after(
    client: openai.OpenAI, sim_log: Records, stream: bool
) -> None:
    token, text = tagged(sim({"status": 429, "headers": {"X-Fal-Retryable": False}}))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text), stream=stream)
    exc = caught.value
    assert exc.status_code == 429
    assert exc.type == "rate_limit_error"
    assert exc.code == "rate_limit_exceeded"
    assert int(exc.response.headers["retry-after"]) >= 1
    assert len(of(sim_log("stream" if stream else "submit"), token)) == 1


def test_fal_429_retry_after_is_passed_on(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
) -> None:
    running = proxy_factory(retry_budget=0.5, key_rate_limit_cooldown=0)
    directive = {"status": 429, "headers": {"X-Fal-Retryable": False, "Retry-After": "3"}}
    with pytest.raises(openai.RateLimitError) as caught:
        make_client(running).chat.completions.create(model=MODEL, messages=ask(sim(directive)))
    assert caught.value.response.headers["retry-after"] == "3"
    assert len(sim_log("submit")) == 1


def test_fal_429_retried_until_the_budget_then_429(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
) -> None:
    running = proxy_factory(retry_budget=0.3, key_rate_limit_cooldown=0.1, max_queue_wait=2)
    token, text = tagged(sim({"status": 429}))
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        make_client(running).chat.completions.create(model=MODEL, messages=ask(text))
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after")
    assert len(of(sim_log("submit"), token)) >= 2  # it did retry
    assert elapsed < 3


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("fal_status", "status", "error_type"),
    [
        (503, 503, "server_error"),
        (504, 504, "timeout_error"),
        (500, 502, "upstream_error"),
        (502, 502, "upstream_error"),
    ],
)
def test_fal_server_errors(
    client: openai.OpenAI,
    sim_log: Records,
    fal_status: int,
    status: int,
    error_type: str,
    stream: bool,
) -> None:
    token, text = tagged(sim({"status": fal_status, "body": {"detail": "runner exploded"}}))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text), stream=stream)
    exc = caught.value
    assert exc.status_code == status
    assert exc.type == error_type
    assert "runner exploded" in exc.message
    # fal answered with a request id: the work may have started, so it is not retried.
    assert len(of(sim_log("stream" if stream else "submit"), token)) == 1


async def test_ingress_502_is_retried_within_the_budget_then_502(
    fast: RunningProxy, make_async_client: Callable[..., openai.AsyncOpenAI], sim_log: Records
) -> None:
    """fal's ingress answered 502 (HTML, no request id): retried until RETRY_BUDGET, then 502.

    Eight requests at once (four streamed), so that random backoff jitter cannot hide a retry
    made after the budget is spent.
    """
    client = make_async_client(fast)
    budget, total = 0.5, 1.0  # the `fast` proxy's retry_budget and request_timeout

    async def one(stream: bool) -> tuple[str, float, float, Exception | None]:
        token, text = tagged(sim({"status": 502, "ingress": True}))
        started = time.monotonic()
        try:
            await client.chat.completions.create(model=MODEL, messages=ask(text), stream=stream)
        except openai.APIError as exc:
            return token, started, time.monotonic() - started, exc
        return token, started, time.monotonic() - started, None

    outcomes = await asyncio.gather(*(one(stream=i % 2 == 1) for i in range(8)))
    problems = []
    for token, started, elapsed, exc in outcomes:
        attempts = [round(r["t"] - started, 3) for r in of(sim_log(), token)]
        status = getattr(exc, "status_code", None)
        if not isinstance(exc, openai.InternalServerError) or status != 502:
            problems.append(f"got {status} {exc}; attempts at {attempts} s")
        elif exc.type != "upstream_error" or "<html>" in exc.message:
            problems.append(f"error body {exc.body}")
        if len(attempts) < 2:
            problems.append(f"not retried: attempts at {attempts} s")
        if max(attempts, default=0) > budget + 0.25:
            problems.append(f"attempt after the {budget} s retry budget: at {attempts} s")
        if elapsed > total + 0.25:
            problems.append(f"answered after {elapsed:.2f} s (request_timeout {total} s)")
    assert not problems, "\n".join(problems)


# -- timeouts, an unreachable fal, failed queue jobs -----------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_fal_hanging_before_headers_is_504(
    client: openai.OpenAI, sim_log: Records, stream: bool
) -> None:
    token, text = tagged(sim({"hang": "before_headers"}))
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text), stream=stream)
    elapsed = time.monotonic() - started
    exc = caught.value
    assert exc.status_code == 504
    assert exc.type == "timeout_error"
    assert exc.code == "upstream_timeout"
    assert elapsed < 3
    assert len(of(sim_log("stream" if stream else "submit"), token)) == 1


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@pytest.fixture(scope="module")
def unreachable(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    base = f"http://127.0.0.1:{_closed_port()}"
    return proxy_factory(
        fal_run_url=base + "/run",
        fal_queue_url=base + "/queue",
        retry_budget=0.3,
        connect_timeout=0.5,
        first_event_timeout=1,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_unreachable_fal_is_502(
    unreachable: RunningProxy, make_client: Callable[..., openai.OpenAI], stream: bool
) -> None:
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        make_client(unreachable).chat.completions.create(
            model=MODEL, messages=ask("anyone there?"), stream=stream
        )
    assert caught.value.status_code == 502
    assert caught.value.type == "upstream_error"
    assert caught.value.code == "upstream_unreachable"
    assert time.monotonic() - started < 3


def test_queue_completed_with_error_is_502(client: openai.OpenAI, sim_log: Records) -> None:
    token, text = tagged(sim({"completed_error": "CUDA out of memory"}))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text))
    exc = caught.value
    assert exc.status_code == 502
    assert exc.type == "upstream_error"
    assert "CUDA out of memory" in exc.message
    (submit,) = of(sim_log("submit"), token)
    results = [r for r in sim_log("result") if r["request_id"] == submit["request_id"]]
    statuses = [r for r in sim_log() if r["request_id"] == submit["request_id"]]
    assert results or len(statuses) > 1  # the proxy followed the job to its end
