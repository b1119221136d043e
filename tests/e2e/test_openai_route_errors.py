"""Upstream failures on fal's OpenAI route, before and during a stream, on chat, the
Responses API and embeddings: each reaches the client in our error shape, with the status
the prompt route would give, and in the stream's own framing once the stream has begun."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from ..support.chat import MODEL, Records, ask, sim
from ..support.servers import RunningProxy

# Upstream status -> what the client gets (translate/errors.py, docs/errors.md).
STATUSES = {
    400: 400, 401: 502, 402: 402, 403: 403, 404: 400, 408: 400, 413: 400, 422: 400, 429: 429,
    500: 502, 502: 502, 503: 503, 504: 504, 524: 502, 529: 502,
}  # fmt: skip


@pytest.fixture(scope="module")
def routed(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    """Every model on the OpenAI route; short retries and timeouts, no key cooldowns."""
    return proxy_factory(
        model_routes="*=openai",
        retry_budget=1,
        first_event_timeout=1.5,
        idle_timeout=0.5,
        request_timeout=2,
        key_auth_cooldown=0,
        key_rate_limit_cooldown=0,
    )


def post(
    http: httpx.Client, running: RunningProxy, endpoint: str, body: dict[str, Any]
) -> httpx.Response:
    return http.post(f"{running.v1}/{endpoint}", json=body)


def bodies(directive: dict[str, Any], stream: bool) -> dict[str, dict[str, Any]]:
    text = sim(directive) + " hi"
    return {
        "chat/completions": {"model": MODEL, "messages": ask(text), "stream": stream},
        "responses": {"model": MODEL, "input": text, "stream": stream},
        "embeddings": {"model": "openai/text-embedding-3-small", "input": text},
    }


def check_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


CALLS = [("chat/completions", False), ("chat/completions", True), ("responses", False),
         ("responses", True), ("embeddings", False)]  # fmt: skip


@pytest.mark.parametrize(("endpoint", "stream"), CALLS, ids=[f"{e}-{s}" for e, s in CALLS])
@pytest.mark.parametrize("status", list(STATUSES))
def test_openrouter_error_before_the_stream(
    routed: RunningProxy, http: httpx.Client, endpoint: str, status: int, stream: bool
) -> None:
    body = bodies({"status": status}, stream)[endpoint]
    error = check_error(post(http, routed, endpoint, body), STATUSES[status])
    assert "Simulated upstream error" in error["message"]


@pytest.mark.parametrize("endpoint", ["chat/completions", "responses", "embeddings"])
def test_fal_detail_errors_before_the_stream(
    routed: RunningProxy, http: httpx.Client, endpoint: str
) -> None:
    refused = {"status": 401, "body": {"detail": "No user found for Key ID and Secret"}}
    error = check_error(post(http, routed, endpoint, bodies(refused, True)[endpoint]), 502)
    assert error["code"] == "upstream_auth"  # fal refused our key: never its value
    locked = {"status": 422, "body": {"detail": [{"loc": ["body", "x"], "msg": "bad"}]}}
    error = check_error(post(http, routed, endpoint, bodies(locked, False)[endpoint]), 400)
    assert "x: bad" in error["message"]


def test_ingress_failures_are_retried_before_the_first_byte(
    routed: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    client = make_client(routed)
    tag = str(time.time())
    text = sim({"fail_times": 1, "status": 503, "ingress": True, "tag": tag})
    answer = client.chat.completions.create(model=MODEL, messages=ask(text + " hi"))
    assert answer.choices[0].message.content == "Simulated answer to: hi"
    assert len(sim_log("openai")) == 2
    text = sim({"fail_times": 1, "status": 503, "ingress": True, "tag": "r" + tag})
    with client.responses.stream(model=MODEL, input=text + " hi") as stream:
        assert stream.get_final_response().output_text == "Simulated answer to: hi"
    assert len(sim_log("openai")) == 4


def test_openrouter_429_gives_retry_after(routed: RunningProxy, http: httpx.Client) -> None:
    body = bodies({"status": 429, "headers": {"retry-after": "7"}}, False)["chat/completions"]
    response = post(http, routed, "chat/completions", body)
    check_error(response, 429)
    assert response.headers["retry-after"] == "7"
    # The provider's limit, not our fal key's: the key is not benched.
    plain = {"model": MODEL, "messages": ask("hi")}
    assert post(http, routed, "chat/completions", plain).status_code == 200


# -- after the stream began ------------------------------------------------------------------


def chat_frames(text: str) -> list[str]:
    return [f[len("data: ") :] for f in text.split("\n\n") if f.startswith("data: ")]


@pytest.mark.parametrize(
    "directive",
    [{"error_at": 3}, {"error_at": 0}, {"drop_at": 3}, {"hang": True}],
    ids=["error-chunk", "error-first", "dropped", "silent"],
)
def test_chat_stream_failure_is_in_band_then_done(
    routed: RunningProxy, http: httpx.Client, directive: dict[str, Any]
) -> None:
    body = bodies(directive, True)["chat/completions"]
    response = post(http, routed, "chat/completions", body)
    assert response.status_code == 200
    frames = chat_frames(response.text)
    assert frames[-1] == "[DONE]"
    error = json.loads(frames[-2])
    assert set(error) == {"error"} and error["error"]["message"]
    chunks = [json.loads(f) for f in frames[:-2]]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks if c["choices"])


def test_chat_stream_error_raises_in_the_sdk_after_the_first_chunks(
    routed: RunningProxy, make_client: Callable[..., openai.OpenAI]
) -> None:
    client = make_client(routed)
    seen: list[Any] = []
    stream = client.chat.completions.create(
        model=MODEL, messages=ask(sim({"error_at": 3, "error_message": "boom"}) + " a b c"),
        stream=True,
    )  # fmt: skip
    with pytest.raises(openai.APIError) as caught:
        seen.extend(stream)
    assert seen and "boom" in caught.value.message


def test_chat_stream_without_done_is_ended_by_the_proxy(
    routed: RunningProxy, http: httpx.Client
) -> None:
    body = bodies({"no_done": True}, True)["chat/completions"]
    frames = chat_frames(post(http, routed, "chat/completions", body).text)
    assert frames[-1] == "[DONE]" and '"finish_reason":"stop"' in frames[-2]


def test_chat_200_with_finish_reason_error_is_502(routed: RunningProxy, http: httpx.Client) -> None:
    body = bodies({"finish_error": True}, False)["chat/completions"]
    error = check_error(post(http, routed, "chat/completions", body), 502)
    assert "Simulated provider failure" in error["message"]


def responses_events(text: str) -> list[dict[str, Any]]:
    events = []
    for frame in text.split("\n\n"):
        lines = frame.split("\n")
        if len(lines) == 2 and lines[0].startswith("event: "):
            events.append(json.loads(lines[1][len("data: ") :]))
    return events


@pytest.mark.parametrize(
    "directive",
    [{"error_at": 4}, {"error_at": 0}, {"drop_at": 4}, {"hang": True}],
    ids=["failed-event", "failed-first", "dropped", "silent"],
)
def test_responses_stream_failure_is_response_failed(
    routed: RunningProxy, http: httpx.Client, directive: dict[str, Any]
) -> None:
    response = post(http, routed, "responses", bodies(directive, True)["responses"])
    assert response.status_code == 200
    events = responses_events(response.text)
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["message"]
    assert "[DONE]" not in response.text


def test_responses_stream_failure_in_the_sdk(
    routed: RunningProxy, make_client: Callable[..., openai.OpenAI]
) -> None:
    client = make_client(routed)
    with client.responses.stream(
        model=MODEL, input=sim({"error_at": 4, "error_message": "boom"}) + " a b c"
    ) as stream:
        kinds = [event.type for event in stream]
        with pytest.raises(RuntimeError):
            stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.failed"


def test_responses_non_stream_failure_is_502(routed: RunningProxy, http: httpx.Client) -> None:
    body = bodies({"status": 500, "body": {"object": "response", "status": "failed"}}, False)
    check_error(post(http, routed, "responses", body["responses"]), 502)


# -- cancellation ----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["chat/completions", "responses"])
def test_client_leaving_closes_the_upstream_stream(
    routed: RunningProxy, sim_log: Records, endpoint: str
) -> None:
    body = bodies({"events": 40, "interval_ms": 100}, True)[endpoint]
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", f"{routed.v1}/{endpoint}", json=body) as response,
    ):
        for _ in response.iter_bytes():
            break
    deadline = time.monotonic() + 3
    while not sim_log("disconnect") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r["path"] for r in sim_log("disconnect")] == [
        f"/run/openrouter/router/openai/v1/{endpoint}"
    ]
