"""Agents through the proxy: tools, the Responses API and embeddings on fal's OpenAI route,
driven with the openai SDK and langchain-openai against the simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from fal_openai_proxy.simulator.openrouter import vector

from ..conftest import CapturedLogs
from ..support.chat import MODEL, Records, ask, of, sim, tagged
from ..support.servers import RunningProxy

ROUTE = "/run/openrouter/router/openai/v1/"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
RESPONSE_WEATHER = {"type": "function", "name": "get_weather",
                    "parameters": WEATHER["function"]["parameters"]}  # fmt: skip


def upstream(records: list[dict[str, Any]], endpoint: str) -> list[dict[str, Any]]:
    return [r for r in records if r["path"].endswith(ROUTE + endpoint)]


def prompt_calls(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "/openai/v1/" not in r["path"]]


# -- routing ---------------------------------------------------------------------------------


def test_plain_chat_under_auto_stays_on_the_prompt_route(
    client: openai.OpenAI, sim_log: Records
) -> None:
    token, text = tagged("hello")
    client.chat.completions.create(model=MODEL, messages=ask(text))
    records = of(sim_log(), token)
    assert records and not upstream(records, "chat/completions")
    assert records[0]["body"]["prompt"].endswith(text)


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [WEATHER]},
        {"tool_choice": "none"},
        {"n": 2},
        {"logprobs": True},
        {"response_format": {"type": "json_object"}},
    ],
    ids=["tools", "tool_choice", "n", "logprobs", "json"],
)
def test_auto_switches_for_what_only_the_openai_route_honours(
    client: openai.OpenAI, sim_log: Records, extra: dict[str, Any]
) -> None:
    token, text = tagged("weather in Paris?")
    client.chat.completions.create(model=MODEL, messages=ask(text), **extra)
    records = of(sim_log(), token)
    assert len(upstream(records, "chat/completions")) == 1
    assert not prompt_calls(records)


def test_tool_history_switches_route(client: openai.OpenAI, sim_log: Records) -> None:
    token, text = tagged("and now?")
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "user", "content": text},
    ]
    client.chat.completions.create(model=MODEL, messages=messages)
    assert len(upstream(of(sim_log(), token), "chat/completions")) == 1


@pytest.fixture(scope="module")
def routed(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(model_routes="openai/*=openai, anthropic/*=prompt, *=auto")


def test_model_routes_force_a_route(
    routed: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    client = make_client(routed)
    token, text = tagged("plain")
    client.chat.completions.create(model="openai/gpt-4.1", messages=ask(text))
    assert len(upstream(of(sim_log(), token), "chat/completions")) == 1
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="anthropic/claude-sonnet-4.5", messages=ask("hi"), tools=[WEATHER]
        )
    assert (caught.value.param, caught.value.code) == ("tools", "unsupported_parameter")


def test_models_file_routes_per_model(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    tmp_path: Any,
) -> None:
    models = tmp_path / "models.json"
    models.write_text(json.dumps([{"id": "x/forced", "route": "openai"}, "x/plain"]))
    client = make_client(proxy_factory(models_file=models))
    token, text = tagged("plain")
    client.chat.completions.create(model="x/forced", messages=ask(text))
    assert len(upstream(of(sim_log(), token), "chat/completions")) == 1


def test_route_in_access_log_and_metrics(
    client: openai.OpenAI, proxy: RunningProxy, captured_logs: CapturedLogs, http: httpx.Client
) -> None:
    _, text = tagged("x")
    client.chat.completions.create(model=MODEL, messages=ask(text), tools=[WEATHER])
    client.chat.completions.create(model=MODEL, messages=ask(text))
    routes = [json.loads(line).get("route") for line in captured_logs.lines[-20:]
              if '"request"' in line]  # fmt: skip
    assert "openai" in routes and "prompt" in routes
    metrics = http.get(proxy.base_url + "/metrics").text
    assert 'fal_proxy_upstream_route_requests_total{endpoint="chat",route="openai"}' in metrics
    assert 'fal_proxy_upstream_route_requests_total{endpoint="chat",route="prompt"}' in metrics


# -- chat with tools -------------------------------------------------------------------------


def test_tool_call_non_stream(client: openai.OpenAI, sim_log: Records) -> None:
    token, text = tagged("weather in Paris?")
    completion = client.chat.completions.create(
        model=MODEL, messages=ask(text), tools=[WEATHER, TIME], tool_choice="auto", seed=7
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "city-value", "days": 1}
    sent = upstream(of(sim_log(), token), "chat/completions")[0]["body"]
    # The client's body, as it was sent.
    assert sent["tools"] == [WEATHER, TIME] and sent["seed"] == 7
    assert sent["messages"] == ask(text) and "stream" not in sent


def test_tool_call_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=ask("weather?"), tools=[WEATHER], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    arguments = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    names = [tc.function.name for tc in calls if tc.function and tc.function.name]
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"city": "city-value", "days": 1}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage and chunks[-1].usage.total_tokens > 0


def test_usage_chunk_only_when_asked(proxy: RunningProxy, http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": ask("weather?"), "tools": [WEATHER], "stream": True}
    text = http.post(proxy.v1 + "/chat/completions", json=body).text
    assert '"usage"' not in text and text.endswith("data: [DONE]\n\n")
    assert ": OPENROUTER" not in text


def test_agent_loop_tool_call_result_and_final_answer(client: openai.OpenAI) -> None:
    messages: list[Any] = ask("What is the weather in Paris?")
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
    final = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "The tool returned: sunny, 21 C"
    assert not final.choices[0].message.tool_calls


def test_n_logprobs_stop_and_json_schema_pass_through(client: openai.OpenAI) -> None:
    several = client.chat.completions.create(
        model=MODEL, messages=ask("one two three"), n=2, logprobs=True, stop=["three"]
    )
    assert [c.index for c in several.choices] == [0, 1]
    assert several.choices[0].message.content == "Simulated answer to: one two "
    assert several.choices[0].logprobs and several.choices[0].logprobs.content
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    structured = client.chat.completions.create(
        model=MODEL, messages=ask("who?"),
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )  # fmt: skip
    assert json.loads(structured.choices[0].message.content or "") == {"name": "name-value"}


def test_n_streams_one_finish_per_choice(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=ask("x y"), n=2, stream=True)
    )
    finished = sorted(c.choices[0].index for c in chunks if c.choices[0].finish_reason)
    assert finished == [0, 1]


def test_reasoning_becomes_openrouter_object_and_reasoning_content(
    client: openai.OpenAI, sim_log: Records
) -> None:
    token, text = tagged("think")
    completion = client.chat.completions.create(
        model=MODEL, messages=ask(text), tools=[WEATHER], tool_choice="none",
        reasoning_effort="high",
    )  # fmt: skip
    sent = upstream(of(sim_log(), token), "chat/completions")[0]["body"]
    assert sent["reasoning"] == {"effort": "high"} and "reasoning_effort" not in sent
    message = completion.choices[0].message
    assert (
        message.model_extra and message.model_extra["reasoning_content"] == "Simulated reasoning."
    )
    stream = client.chat.completions.create(
        model=MODEL, messages=ask("think"), tools=[WEATHER], tool_choice="none", stream=True,
        extra_body={"reasoning": True},
    )  # fmt: skip
    pieces = [c.choices[0].delta.model_extra.get("reasoning_content") for c in stream if c.choices]
    assert "".join(p for p in pieces if p) == "Simulated reasoning."


def test_langchain_bind_tools(proxy: RunningProxy, make_client: Callable[..., Any]) -> None:
    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    llm = ChatOpenAI(
        model=MODEL, base_url=proxy.v1, api_key="unused",  # type: ignore[arg-type]
        http_client=make_client(proxy)._client,
    )  # fmt: skip
    bound = llm.bind_tools([get_weather])
    answer = bound.invoke([HumanMessage("weather in Paris?")])
    assert answer.tool_calls and answer.tool_calls[0]["name"] == "get_weather"
    assert answer.tool_calls[0]["args"] == {"city": "city-value"}
    result = ToolMessage("sunny", tool_call_id=answer.tool_calls[0]["id"])
    final = bound.invoke([HumanMessage("weather in Paris?"), answer, result])
    assert final.content == "The tool returned: sunny"
    streamed = list(bound.stream([HumanMessage("weather?")]))
    merged = streamed[0]
    for piece in streamed[1:]:
        merged += piece  # type: ignore[assignment]
    assert merged.tool_calls[0]["args"] == {"city": "city-value"}  # type: ignore[attr-defined]


def test_langchain_with_structured_output(
    proxy: RunningProxy, make_client: Callable[..., Any]
) -> None:
    class Person(BaseModel):
        name: str
        age: int

    llm = ChatOpenAI(
        model=MODEL, base_url=proxy.v1, api_key="unused",  # type: ignore[arg-type]
        http_client=make_client(proxy)._client,
    )  # fmt: skip
    person = llm.with_structured_output(Person).invoke("Who is it?")
    assert person == Person(name="name-value", age=1)
    via_tool = llm.with_structured_output(Person, method="function_calling").invoke("Who?")
    assert via_tool == Person(name="name-value", age=1)


# -- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"parameters": {}}}]},
         "tools[0].function.name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "tool_choice"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
    ],
    ids=["nameless-tool", "unknown-tool-choice", "bad-tool-choice"],
)  # fmt: skip
def test_bad_tools_are_400_before_any_upstream_call(
    client: openai.OpenAI, sim_log: Records, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask("x"), **extra)
    assert caught.value.param == param
    assert sim_log() == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"store": True}, "store"),
        ({"tools": [{"type": "function", "parameters": {}}]}, "tools[0].name"),
        ({"tools": [RESPONSE_WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
         "tool_choice"),
    ],
    ids=["previous_response_id", "conversation", "background", "store", "nameless", "choice"],
)  # fmt: skip
def test_responses_refuses_state_and_bad_tools(
    client: openai.OpenAI, sim_log: Records, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", **extra)
    assert caught.value.param == param
    assert sim_log() == []


@pytest.mark.parametrize(
    ("value", "param"),
    [(None, "input"), ("", "input"), ([], "input"), (42, "input"), (["a", 3], "input[1]"),
     ({"text": "a"}, "input")],
    ids=["missing", "empty-string", "empty-list", "number", "mixed-list", "object"],
)  # fmt: skip
def test_embeddings_bad_input_is_400(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records, value: Any, param: str
) -> None:
    body: dict[str, Any] = {"model": "openai/text-embedding-3-small"}
    if value is not None:
        body["input"] = value
    response = http.post(proxy.v1 + "/embeddings", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert sim_log() == []


def test_stored_responses_are_a_clear_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve("resp_123")
    assert "stateless" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.delete("resp_123")


# -- Responses API ---------------------------------------------------------------------------


def test_responses_create_text_and_store_false(client: openai.OpenAI, sim_log: Records) -> None:
    token, text = tagged("hello there")
    response = client.responses.create(model=MODEL, input=text, store=False)
    assert response.status == "completed"
    assert response.output_text == f"Simulated answer to: {text}"
    sent = upstream(of(sim_log(), token), "responses")[0]["body"]
    assert sent == {"model": MODEL, "input": text, "store": False}


def test_responses_create_tool_call_then_answer(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="weather?", tools=[RESPONSE_WEATHER])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    history: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
    ]  # fmt: skip
    final = client.responses.create(model=MODEL, input=history, tools=[RESPONSE_WEATHER])  # type: ignore[list-item]
    assert final.output_text == "The tool returned: rain"


def test_responses_stream_with_a_tool_call(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model=MODEL,
        input="weather?",
        tools=[RESPONSE_WEATHER],  # type: ignore[list-item]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    call = final.output[0]
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "city-value", "days": 1}


def test_responses_create_stream_text(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input="a b c", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Simulated answer to: a b c"
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_responses_stream_without_completed_is_completed_by_the_proxy(
    client: openai.OpenAI,
) -> None:
    with client.responses.stream(model=MODEL, input=sim({"no_completed": True}) + " hi") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "Simulated answer to: hi"


def test_responses_structured_output_passes_through(
    client: openai.OpenAI, sim_log: Records
) -> None:
    token, text = tagged("who?")
    fmt = {"type": "json_schema", "name": "p",
           "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}  # fmt: skip
    response = client.responses.create(model=MODEL, input=text, text={"format": fmt})  # type: ignore[typeddict-item]
    assert json.loads(response.output_text) == {"name": "name-value"}
    assert upstream(of(sim_log(), token), "responses")[0]["body"]["text"] == {"format": fmt}


# -- embeddings ------------------------------------------------------------------------------


def test_embeddings_vectors_are_fal_s_unchanged(client: openai.OpenAI, sim_log: Records) -> None:
    result = client.embeddings.create(model="openai/text-embedding-3-small", input=["a b", "c"])
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding == vector("a b", 8)  # base64 by default in the SDK
    assert result.usage.prompt_tokens == 3
    floats = client.embeddings.create(
        model="openai/text-embedding-3-small", input="c", encoding_format="float", dimensions=4
    )
    assert floats.data[0].embedding == vector("c", 4)
    sent = upstream(sim_log(), "embeddings")[-1]["body"]
    assert sent == {"model": "openai/text-embedding-3-small", "input": "c",
                    "encoding_format": "float", "dimensions": 4}  # fmt: skip
