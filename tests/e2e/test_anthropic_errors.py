"""Errors, auth and keep-alives of the Messages API, as the anthropic SDK sees them: every
failure in Anthropic's shape with the status that picks the SDK's error class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from ..support.chat import sim
from ..support.servers import API_KEY, CLIENT_FAL_KEY, RunningProxy
from .test_anthropic import CLAUDE, GEMINI, WEATHER, _raw_stream

Factory = Callable[..., RunningProxy]


@pytest.fixture
def claude(proxy: RunningProxy, make_anthropic: Callable[..., anthropic.Anthropic]) -> Any:
    return make_anthropic(proxy)


def ask(client: Any, text: str, **kwargs: Any) -> Any:
    return client.messages.create(
        model=kwargs.pop("model", CLAUDE), max_tokens=50,
        messages=[{"role": "user", "content": text}], **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "error_class", "error_type", "proxy_status"),
    [
        (402, anthropic.PaymentRequiredError, "billing_error", 402),
        (403, anthropic.PermissionDeniedError, "permission_error", 403),
        (429, anthropic.RateLimitError, "rate_limit_error", 429),
        (500, anthropic.InternalServerError, "api_error", 502),
        (503, anthropic.ServiceUnavailableError, "overloaded_error", 503),
        (529, anthropic.OverloadedError, "overloaded_error", 529),
    ],
)
def test_upstream_errors_take_the_chat_table_in_anthropic_shape(
    claude: Any, status: int, error_class: type[Exception], error_type: str, proxy_status: int
) -> None:
    with pytest.raises(error_class) as caught:
        ask(claude, "fail " + sim({"status": status}), tools=[WEATHER])
    error = caught.value
    assert isinstance(error, anthropic.APIStatusError)
    assert error.status_code == proxy_status
    assert error.body["type"] == "error" and error.body["error"]["type"] == error_type


def test_bad_requests_name_the_field(claude: Any) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )  # fmt: skip
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "web_search" in caught.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Field required"):
        claude.post(
            "/v1/messages",
            cast_to=object,
            body={"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}]},
        )
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.content\.0"):
        claude.messages.create(model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": [
            {"type": "tool_use", "id": "t", "name": "n", "input": {}}]}])  # fmt: skip
    with pytest.raises(anthropic.BadRequestError, match="budget_tokens"):
        claude.messages.create(model=CLAUDE, max_tokens=1500, messages=[{"role": "user",
            "content": "hi"}], thinking={"type": "enabled", "budget_tokens": 2000})  # fmt: skip


def test_tools_on_the_prompt_route_are_refused(
    proxy_factory: Factory, make_anthropic: Callable[..., Any]
) -> None:
    client = make_anthropic(proxy_factory(model_routes="*=prompt"))
    with pytest.raises(anthropic.BadRequestError, match="tools"):
        ask(client, "hi", tools=[WEATHER])


def test_unknown_paths_answer_404_in_anthropic_shape(claude: Any) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.batches.list()
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_a_body_over_the_limit_is_413(
    proxy_factory: Factory, make_anthropic: Callable[..., Any]
) -> None:
    client = make_anthropic(proxy_factory(max_body_bytes=2000))
    with pytest.raises(anthropic.ContentTooLargeError) as caught:
        ask(client, "x" * 5000)
    assert caught.value.body["error"]["type"] == "invalid_request_error"


def test_an_upstream_timeout_is_504(
    proxy_factory: Factory, make_anthropic: Callable[..., Any]
) -> None:
    client = make_anthropic(
        proxy_factory(first_event_timeout=0.3, request_timeout=0.6, retry_budget=0)
    )
    with pytest.raises(anthropic.GatewayTimeoutError) as caught:
        ask(client, "slow " + sim({"latency_ms": 3000}), tools=[WEATHER])
    assert caught.value.body["error"]["type"] == "timeout_error"


@pytest.mark.parametrize(
    ("directive", "error_type"),
    [({}, "api_error"), ({"error_type": "provider_overloaded"}, "overloaded_error")],
)
def test_errors_after_the_stream_began_are_error_events(
    claude: Any, directive: dict[str, Any], error_type: str
) -> None:
    text = "break " + sim({"error_at": 3, **directive})
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        claude.messages.stream(
            model=CLAUDE,
            max_tokens=50,
            tools=[WEATHER],
            tool_choice={"type": "none"},
            messages=[{"role": "user", "content": text}],
        ) as stream,
    ):
        for _ in stream:
            pass
    assert caught.value.body["error"]["type"] == error_type


def test_prompt_route_stream_errors_are_error_events(claude: Any) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        claude.messages.stream(
            model=GEMINI,
            max_tokens=50,
            messages=[{"role": "user", "content": "x " + sim({"error_at": 2})}],
        ) as stream,
    ):
        for _ in stream:
            pass
    assert caught.value.body["type"] == "error"


# -- auth ----------------------------------------------------------------------------------------


def test_api_key_by_x_api_key_or_bearer(
    proxy_factory: Factory, make_anthropic: Callable[..., Any]
) -> None:
    guarded = proxy_factory(api_key=API_KEY)
    assert ask(make_anthropic(guarded, api_key=API_KEY), "hi").stop_reason == "end_turn"
    bearer = anthropic.Anthropic(base_url=guarded.base_url, auth_token=API_KEY, max_retries=0)
    with bearer:
        assert ask(bearer, "hi").stop_reason == "end_turn"
    with pytest.raises(anthropic.AuthenticationError) as caught:
        ask(make_anthropic(guarded, api_key="wrong-key"), "hi")
    assert caught.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):
        make_anthropic(guarded, api_key="wrong-key").messages.count_tokens(
            model=CLAUDE, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.AuthenticationError):
        make_anthropic(guarded, api_key="wrong-key").models.list()


def test_pass_through_uses_the_clients_fal_key(
    proxy_factory: Factory, make_anthropic: Callable[..., Any]
) -> None:
    open_proxy = proxy_factory(fal_key="")
    assert ask(make_anthropic(open_proxy, api_key=CLIENT_FAL_KEY), "hi", tools=[WEATHER])
    with pytest.raises(anthropic.AuthenticationError):
        ask(make_anthropic(open_proxy, api_key="not-a-fal-key"), "hi", tools=[WEATHER])


# -- keep-alives and cache_control --------------------------------------------------------------


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_an_idle_stream_gets_pings(proxy_factory: Factory, model: str) -> None:
    proxy = proxy_factory(keepalive_interval=0.05)
    body: dict[str, Any] = {"model": model, "max_tokens": 50, "messages": [
        {"role": "user", "content": "slow " + sim({"interval_ms": 250, "events": 3})}]}  # fmt: skip
    if model == CLAUDE:
        body |= {"tools": [WEATHER], "tool_choice": {"type": "none"}}
    raw = _raw_stream(proxy, body)
    assert b'event: ping\ndata: {"type":"ping"}\n\n' in raw
    assert raw.index(b"event: message_start") < raw.index(b"event: ping")


def test_cache_control_is_accepted_and_ignored(claude: Any, sim_log: Any) -> None:
    tool = {**WEATHER, "cache_control": {"type": "ephemeral"}}
    message = claude.messages.create(
        model=CLAUDE, max_tokens=50, tools=[tool],
        system=[{"type": "text", "text": "sys",
                 "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "cached question", "cache_control": {"type": "ephemeral"}}]}],
    )  # fmt: skip
    assert message.stop_reason == "tool_use"
    sent = [r for r in sim_log() if "cached question" in str(r.get("body"))]
    assert sent and "cache_control" not in str(sent[0]["body"])


def test_models_list_errors_in_anthropic_shape(proxy: RunningProxy) -> None:
    headers = {"anthropic-version": "2023-06-01"}
    answer = httpx.get(proxy.v1 + "/models?limit=0", headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    plain = httpx.get(proxy.v1 + "/models?limit=0")  # OpenAI clients: no paging, no error
    assert plain.status_code == 200 and plain.json()["object"] == "list"
