"""Anthropic's Messages API through the proxy, driven by the anthropic SDK against the
simulator as a real server; every response is checked against the SDK's own types and
Anthropic's stream framing (tests/support/anthropic_schema.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from ..conftest import CapturedLogs
from ..support.anthropic_schema import parse_events
from ..support.chat import Records, of, sim, tagged
from ..support.servers import RunningProxy
from .test_cost import PROMPT_PRICES, ROUTE_PRICE, recorded

GEMINI = "google/gemini-2.5-flash"
CLAUDE = "anthropic/claude-sonnet-4.5"
ROUTE = "openrouter/router/openai/v1/chat/completions"
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@pytest.fixture
def claude(proxy: RunningProxy, make_anthropic: Callable[..., anthropic.Anthropic]) -> Any:
    return make_anthropic(proxy)


def upstream(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bodies sent to fal's OpenAI route."""
    return [r["body"] for r in records if r["path"].endswith(ROUTE)]


def prompt_inputs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["body"] for r in records if "/openai/v1/" not in r["path"] and r.get("body")]


# -- text, on the prompt route (no tools: MODEL_ROUTES auto stays there) ----------------------


def test_create_text_on_the_prompt_route(claude: Any, sim_log: Records) -> None:
    token, text = tagged("hello")
    message = claude.messages.create(
        model=GEMINI, max_tokens=50, system=[{"type": "text", "text": "Be brief.",
        "cache_control": {"type": "ephemeral"}}], messages=[{"role": "user", "content": text}],
        metadata={"user_id": "u-1"}, extra_body={"top_k": 5},
    )  # fmt: skip
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == GEMINI
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == f"Simulated answer to: {text}"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    fal_input = prompt_inputs(of(sim_log(), token))[0]
    assert fal_input["system_prompt"].startswith("System: Be brief.")
    assert fal_input["max_tokens"] == 50 and "top_k" not in fal_input  # the route has none
    assert not upstream(of(sim_log(), token))


def test_claude_codes_own_model_ids_reach_openrouters(claude: Any, sim_log: Records) -> None:
    """Claude Code sends Anthropic's ids (`claude-sonnet-4-5-20250929`): they work unchanged."""
    token, text = tagged("hello")
    message = claude.messages.create(
        model="claude-sonnet-4-5-20250929", max_tokens=50,
        messages=[{"role": "user", "content": text}],
    )  # fmt: skip
    assert message.model == "claude-sonnet-4-5-20250929"
    fal_input = prompt_inputs(of(sim_log(), token))[0]
    assert fal_input["model"] == "anthropic/claude-sonnet-4.5"


def test_stream_text_on_the_prompt_route(claude: Any) -> None:
    _, text = tagged("stream me")
    with claude.messages.stream(
        model=GEMINI, max_tokens=50, messages=[{"role": "user", "content": text}]
    ) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) > 1 and "".join(deltas) == f"Simulated answer to: {text}"
    assert final.content[0].text == "".join(deltas) and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequences_on_both_routes(claude: Any, stream: bool) -> None:
    for tools in ([], [WEATHER]):
        extra: dict[str, Any] = {"tools": tools, "tool_choice": {"type": "none"}} if tools else {}
        kwargs = dict(model=CLAUDE, max_tokens=50, stop_sequences=["answer"],
                      messages=[{"role": "user", "content": "stop here"}], **extra)  # fmt: skip
        if stream:
            with claude.messages.stream(**kwargs) as s:
                message = s.get_final_message()
        else:
            message = claude.messages.create(**kwargs)
        assert message.content[0].text == "Simulated "
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "answer")


# -- tools over several turns (fal's OpenAI route) --------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_tools_over_several_turns(claude: Any, sim_log: Records, stream: bool) -> None:
    token, text = tagged("weather in Paris?")

    def ask(messages: list[dict[str, Any]]) -> Any:
        kwargs = dict(model=CLAUDE, max_tokens=200, tools=[WEATHER, TIME], messages=messages)
        if not stream:
            return claude.messages.create(**kwargs)
        with claude.messages.stream(**kwargs) as s:
            return s.get_final_message()

    history: list[dict[str, Any]] = [{"role": "user", "content": text}]
    first = ask(history)
    assert first.stop_reason == "tool_use"
    (call,) = first.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "city-value", "days": 1}
    history += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21C"},
            {"type": "text", "text": "and be quick"}]},
    ]  # fmt: skip
    second = ask(history)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "The tool returned: Sunny, 21C"
    history += [
        {"role": "assistant", "content": second.content},
        {"role": "user", "content": "and tomorrow?"},
    ]
    third = ask(history)
    assert third.stop_reason == "tool_use" and third.content[0].name == "get_weather"
    sent = upstream(of(sim_log(), token))
    assert len(sent) == 3
    assert sent[0]["tools"][0] == {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": WEATHER["input_schema"]}}  # fmt: skip
    turn = sent[1]["messages"]
    assert turn[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(turn[1]["tool_calls"][0]["function"]["arguments"]) == call.input
    assert turn[2] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21C"}
    assert turn[3] == {"role": "user", "content": "and be quick"}


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "get_time"},
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
def test_tool_choice(claude: Any, sim_log: Records, choice: dict[str, Any], sent: Any) -> None:
    token, text = tagged("pick")
    message = claude.messages.create(
        model=CLAUDE, max_tokens=50, tools=[WEATHER, TIME], tool_choice=choice,
        messages=[{"role": "user", "content": text}], metadata={"user_id": "u-7"},
        extra_body={"top_k": 4},
    )  # fmt: skip
    body = upstream(of(sim_log(), token))[0]
    assert body["tool_choice"] == sent and "parallel_tool_calls" not in body
    assert body["user"] == "u-7" and body["top_k"] == 4  # fal's OpenAI route takes both
    names = [b.name for b in message.content if b.type == "tool_use"]
    assert names == {"auto": ["get_weather"], "any": ["get_weather"], "none": [],
                     "tool": ["get_time"]}[choice["type"]]  # fmt: skip


def test_disable_parallel_tool_use(claude: Any, sim_log: Records) -> None:
    calls = [{"name": "get_weather", "arguments": {"city": "Oslo"}},
             {"name": "get_time", "arguments": {}}]  # fmt: skip
    token, text = tagged("both " + sim({"tool_calls": calls}))
    kwargs = dict(model=CLAUDE, max_tokens=50, tools=[WEATHER, TIME],
                  messages=[{"role": "user", "content": text}])  # fmt: skip
    both = claude.messages.create(**kwargs)
    assert [b.input for b in both.content] == [{"city": "Oslo"}, {}]
    one = claude.messages.create(
        **kwargs, tool_choice={"type": "auto", "disable_parallel_tool_use": True}
    )
    assert [b.name for b in one.content] == ["get_weather"]
    assert upstream(of(sim_log(), token))[1]["parallel_tool_calls"] is False


@pytest.mark.parametrize("interleave", [False, True])
def test_parallel_tool_calls_stream_one_block_each(
    proxy: RunningProxy, claude: Any, interleave: bool
) -> None:
    """Fragments of two calls, mixed by the upstream or not, come out as two blocks, one after
    the other, every fragment passed on (none merged or lost) in order."""
    calls = [{"name": "get_weather", "arguments": {"city": "Lisbon, Portugal", "days": 3}},
             {"name": "get_time", "arguments": {"zone": "Europe/Lisbon"}}]  # fmt: skip
    directive = {"tool_calls": calls, "interleave": interleave, "events": 4}
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=200,
        tools=[WEATHER, TIME],
        messages=[{"role": "user", "content": "go " + sim(directive)}],
    ) as stream:
        final = stream.get_final_message()
    assert [(b.name, b.input) for b in final.content] == [
        (c["name"], c["arguments"]) for c in calls
    ]
    raw = _raw_stream(proxy, {"model": CLAUDE, "max_tokens": 200, "tools": [WEATHER, TIME],
        "messages": [{"role": "user", "content": "go " + sim(directive)}]})  # fmt: skip
    events, problems = parse_events(raw)
    assert not problems
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert len(fragments) >= 4  # several fragments per call, passed on one by one
    starts = [d["index"] for n, d in events if n == "content_block_start"]
    assert starts == [0, 1]


def _raw_stream(proxy: RunningProxy, body: dict[str, Any]) -> bytes:
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "unused"}
    with httpx.Client(timeout=30) as client:
        answer = client.post(proxy.v1 + "/messages", json={**body, "stream": True}, headers=headers)
    assert answer.status_code == 200
    return answer.content


# -- images and documents ---------------------------------------------------------------------


def test_images_base64_and_url(claude: Any, sim_log: Records) -> None:
    token, text = tagged("What is in these?")
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": text},
    ]
    message = claude.messages.create(
        model=GEMINI, max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    assert message.content[0].text == f"Simulated answer to: {text} [images: 2]"
    fal_input = prompt_inputs(of(sim_log(), token))[0]
    assert fal_input["image_urls"] == [
        f"data:image/png;base64,{PNG}",
        "https://example.com/cat.png",
    ]


def test_images_and_documents_on_the_openai_route(claude: Any, sim_log: Records) -> None:
    token, text = tagged("Read these")
    pdf = base64.b64encode(b"%PDF-1.4 /Type /Page ... %%EOF").decode()
    content = [
        {"type": "document", "title": "report.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "plain notes"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": text},
    ]  # fmt: skip
    message = claude.messages.create(
        model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    assert message.content[0].text.endswith("[images: 1] [files: 1]")
    parts = upstream(of(sim_log(), token))[0]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "report.pdf"}
    assert parts[1] == {"type": "file", "file": {"filename": "report.pdf",
                        "file_data": f"data:application/pdf;base64,{pdf}"}}  # fmt: skip
    assert parts[2] == {"type": "text", "text": "plain notes"}
    assert parts[3]["image_url"]["url"] == f"data:image/png;base64,{PNG}"


def test_tool_result_with_an_image_and_an_error(claude: Any, sim_log: Records) -> None:
    token, text = tagged("look")
    history = [
        {"role": "user", "content": text},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "A"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                {"type": "text", "text": "see chart"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}}]},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": "clock broken"}]},
    ]  # fmt: skip
    message = claude.messages.create(
        model=CLAUDE, max_tokens=50, tools=[WEATHER, TIME], messages=history
    )
    assert message.content[0].text == "The tool returned: see chart Error: clock broken"
    sent = upstream(of(sim_log(), token))[0]["messages"]
    assert sent[2]["content"][1]["type"] == "image_url"
    assert sent[3] == {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: clock broken"}


# -- thinking -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [CLAUDE, "google/gemini-3-pro"])
@pytest.mark.parametrize("stream", [False, True])
def test_thinking_with_tools_round_trips_its_signature(
    claude: Any, sim_log: Records, model: str, stream: bool
) -> None:
    token, text = tagged("think, then call " + sim({"redacted_reasoning": True}))
    kwargs: dict[str, Any] = dict(model=model, max_tokens=4000, tools=[WEATHER],
                  thinking={"type": "enabled", "budget_tokens": 2048})  # fmt: skip

    def ask(messages: list[dict[str, Any]]) -> Any:
        if not stream:
            return claude.messages.create(**kwargs, messages=messages)
        with claude.messages.stream(**kwargs, messages=messages) as s:
            return s.get_final_message()

    first = ask([{"role": "user", "content": text}])
    assert [b.type for b in first.content] == ["thinking", "redacted_thinking", "tool_use"]
    thinking = first.content[0]
    assert thinking.thinking == "Simulated reasoning." and thinking.signature
    history = [
        {"role": "user", "content": text},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[2].id,
                                      "content": "Rain"}]},
    ]  # fmt: skip
    second = ask(history)  # the simulator refuses reasoning that does not come back as given
    assert second.content[-1].text == "The tool returned: Rain"
    sent = upstream(of(sim_log(), token))
    assert sent[0]["reasoning"] == {"max_tokens": 2048}
    details = sent[1]["messages"][1]["reasoning_details"]
    assert details[0]["type"] == "reasoning.text" and details[0]["signature"].startswith("sim-sig-")
    assert details[1]["type"] == "reasoning.encrypted"
    assert details[1]["data"].startswith("sim-redacted-")
    if model.startswith("google/"):
        assert details[0]["format"] == "google-gemini-v1" and details[0]["id"].startswith("rs_")
    else:
        assert thinking.signature == details[0]["signature"]  # verbatim: an Anthropic signature


def test_an_altered_thinking_block_is_refused_upstream(claude: Any) -> None:
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "edited", "signature": "sim-sig-0000"},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "B"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9",
                                      "content": "x"}]},
    ]  # fmt: skip
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model=CLAUDE, max_tokens=50, tools=[WEATHER], messages=history)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "signature" in caught.value.body["error"]["message"]


def test_thinking_stream_events(proxy: RunningProxy) -> None:
    raw = _raw_stream(proxy, {"model": CLAUDE, "max_tokens": 3000, "messages": [
        {"role": "user", "content": "think"}], "tools": [WEATHER], "tool_choice": {"type": "none"},
        "thinking": {"type": "enabled", "budget_tokens": 1024}})  # fmt: skip
    events, problems = parse_events(raw)
    assert not problems
    deltas = [d["delta"]["type"] for n, d in events if n == "content_block_delta"]
    assert deltas[0] == "thinking_delta" and "signature_delta" in deltas
    assert deltas.index("signature_delta") < deltas.index("text_delta")
    assert [n for n, _ in events][:2] == ["message_start", "content_block_start"]
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]


# -- count_tokens, models, headers ------------------------------------------------------------


def test_count_tokens_grows_with_the_input(claude: Any) -> None:
    def count(**kwargs: Any) -> int:
        return int(claude.messages.count_tokens(model=CLAUDE, **kwargs).input_tokens)

    short = count(messages=[{"role": "user", "content": "Hello"}])
    longer = count(messages=[{"role": "user", "content": "Hello " * 200}])
    with_tools = count(messages=[{"role": "user", "content": "Hello"}], tools=[WEATHER, TIME])
    with_image = count(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "Hello"}]}])  # fmt: skip
    assert 0 < short < longer and 190 < longer - short < 260
    assert with_tools > short and with_image >= short + 1000


def test_models_in_anthropic_shape_with_pages(
    proxy: RunningProxy, claude: Any, http: httpx.Client
) -> None:
    openai_ids = [m["id"] for m in http.get(proxy.v1 + "/models").json()["data"]]
    page = claude.models.list(limit=5)
    assert len(page.data) == 5 and page.has_more
    assert [m.id for m in claude.models.list(limit=5).iter_pages().__next__().data] == openai_ids[
        :5
    ]
    assert [m.id for m in claude.models.list(limit=7)] == openai_ids  # auto-paging
    model = claude.models.retrieve(openai_ids[0])
    assert model.type == "model" and model.display_name == openai_ids[0]


def test_anthropic_headers_never_cause_an_error(claude: Any) -> None:
    message = claude.messages.create(
        model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-version": "2099-01-01",
                       "anthropic-beta": "made-up-2031-01-01,interleaved-thinking-2025-05-14"},
        extra_body={"context_management": {"edits": []}, "service_tier": "auto"},
    )  # fmt: skip
    assert message.stop_reason == "end_turn"


async def test_the_async_client_streams_tools(
    proxy: RunningProxy, make_async_anthropic: Callable[..., anthropic.AsyncAnthropic]
) -> None:
    client = make_async_anthropic(proxy)
    async with client.messages.stream(
        model=CLAUDE, max_tokens=100, tools=[WEATHER],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:  # fmt: skip
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].type == "tool_use" and final.stop_reason == "tool_use"


# -- cost: recorded as for chat, never shown (Anthropic's usage has no place for it) ----------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("tools", [[], [WEATHER]], ids=["prompt-app", "openai-route"])
def test_the_cost_is_recorded_and_never_shown(
    claude: Any,
    captured_logs: CapturedLogs,
    sim_log: Records,
    stream: bool,
    tools: list[dict[str, Any]],
) -> None:
    token, text = tagged("price a message")
    kwargs: dict[str, Any] = dict(model=CLAUDE if tools else GEMINI, max_tokens=50, tools=tools,
                                  messages=[{"role": "user", "content": text}])  # fmt: skip
    if stream:
        with claude.messages.with_streaming_response.create(**kwargs, stream=True) as raw:
            body = raw.read()
            request_id = raw.headers["x-request-id"]
        message = parse_events(body)[0][-2][1]["usage"]
        used = (message["input_tokens"], message["output_tokens"])
    else:
        raw = claude.messages.with_raw_response.create(**kwargs)
        body, request_id = raw.read(), raw.headers["x-request-id"]
        usage = raw.parse().usage
        used = (usage.input_tokens, usage.output_tokens)
    assert b"cost" not in body
    line = recorded(captured_logs, request_id)
    assert line["cost_source"] == "openrouter"
    prices = (ROUTE_PRICE, ROUTE_PRICE) if tools else PROMPT_PRICES
    assert line["cost"] == pytest.approx(prices[0] * used[0] + prices[1] * used[1])
    if tools:
        assert upstream(of(sim_log(), token))[0]["usage"] == {"include": True}
