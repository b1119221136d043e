"""Chat completions end to end: openai SDK (sync, async) and langchain against the simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI

from ..support.chat import MODEL, ask
from ..support.schema import AsyncValidatingTransport, Recorder, ValidatingTransport
from ..support.servers import RunningProxy

VECTORS = json.loads(
    (Path(__file__).parent.parent / "data" / "prompt-strategy-vectors.json").read_text()
)


def test_non_stream_answer_usage_and_shape(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=ask("What is 2+2?"))
    choice = completion.choices[0]
    assert choice.message.content == "Simulated answer to: What is 2+2?"
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert completion.model == MODEL
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.usage.completion_tokens == len(choice.message.content.split())
    assert isinstance(completion.system_fingerprint, str)


def test_stream_deltas_rebuild_the_answer(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=ask("Name a colour"), stream=True)
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Simulated answer to: Name a colour"
    assert len([c for c in chunks if c.choices[0].delta.content]) >= 3  # really streamed
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_stream_include_usage_ends_with_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ask("count words"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=ask("headers"), stream=True
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["cache-control"] == "no-cache"
    assert raw.headers["x-accel-buffering"] == "no"
    assert raw.headers["x-request-id"]
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse()).endswith("headers")


def test_request_id_is_echoed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=ask("id"), extra_headers={"X-Request-ID": "my-trace-42"}
    )
    assert raw.headers["x-request-id"] == "my-trace-42"
    assert raw.headers["content-type"] == "application/json"


async def test_async_client_stream_and_not(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model=MODEL, messages=ask("async one"))
    assert completion.choices[0].message.content == "Simulated answer to: async one"
    stream = await aclient.chat.completions.create(
        model=MODEL, messages=ask("async two"), stream=True
    )
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == "Simulated answer to: async two"


def test_sdk_stream_helper(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model=MODEL, messages=ask("helper")) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Simulated answer to: helper"


def test_fal_input_fields(
    client: openai.OpenAI, sim_log: Callable[..., list[dict[str, Any]]]
) -> None:
    client.chat.completions.create(
        model="anthropic/claude-sonnet-4.6",
        messages=[{"role": "system", "content": "Be brief."}, *ask("Hi")],
        temperature=0.3,
        max_completion_tokens=50,
        user="someone",
        seed=7,
        top_p=0.5,
        presence_penalty=0.1,
        metadata={"a": "b"},
        store=False,
    )
    (submit,) = sim_log("submit")
    assert submit["app"] == "openrouter/router"
    assert submit["body"] == {
        "model": "anthropic/claude-sonnet-4.6",
        "prompt": "Human: Hi",
        "system_prompt": "System: Be brief.",
        "reasoning": False,
        "temperature": 0.3,
        "max_tokens": 50,
    }


def test_max_tokens_is_sent_as_max_tokens(
    client: openai.OpenAI, sim_log: Callable[..., list[dict[str, Any]]]
) -> None:
    client.chat.completions.create(model=MODEL, messages=ask("one two three"), max_tokens=3)
    (submit,) = sim_log("submit")
    assert submit["body"]["max_tokens"] == 3
    assert "temperature" not in submit["body"]


@pytest.mark.parametrize(
    "extra",
    [{"reasoning": True}, {"reasoning_effort": "low"}, {"reasoning": {"effort": "high"}}],
    ids=["seed-flag", "reasoning_effort", "openrouter-object"],
)
def test_reasoning_non_stream(client: openai.OpenAI, extra: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"extra_body": extra}
    if "reasoning_effort" in extra:
        kwargs = {"reasoning_effort": extra["reasoning_effort"]}
    completion = client.chat.completions.create(model=MODEL, messages=ask("why?"), **kwargs)
    message = completion.choices[0].message
    assert message.content == "Simulated answer to: why?"
    assert getattr(message, "reasoning_content", None) == "Thinking about: why?"


def test_reasoning_stream_uses_reasoning_content(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=ask("think"), stream=True, extra_body={"reasoning": True}
        )
    )
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert reasoning == "Thinking about: think"
    assert content == "Simulated answer to: think"


def test_reasoning_excluded_is_not_returned(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=ask("hide"), extra_body={"reasoning": {"exclude": True}}
    )
    assert getattr(completion.choices[0].message, "reasoning_content", None) is None


def test_no_reasoning_without_asking(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=ask("plain"))
    assert getattr(completion.choices[0].message, "reasoning_content", None) is None


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_stop_sequence_cuts_output(client: openai.OpenAI, stream: bool) -> None:
    messages = ask('say it [[sim {"text": "alpha beta STOP gamma delta"}]]')
    if stream:
        chunks = client.chat.completions.create(
            model=MODEL, messages=messages, stop=["STOP", "zzz"], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
    else:
        completion = client.chat.completions.create(model=MODEL, messages=messages, stop="STOP")
        assert completion.choices[0].finish_reason == "stop"
        text = completion.choices[0].message.content or ""
    assert text == "alpha beta "


def test_vision_parts_go_to_the_vision_app(
    client: openai.OpenAI, sim_log: Callable[..., list[dict[str, Any]]]
) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "image_url", "image_url": "https://example.com/dog.png"},
            ],
        }
    ]
    completion = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == (
        "Simulated answer to: What is in this picture? [images: 2]"
    )
    (submit,) = sim_log("submit")
    assert submit["app"] == "openrouter/router/vision"
    assert submit["body"]["image_urls"] == [
        "https://example.com/cat.png",
        "https://example.com/dog.png",
    ]
    assert submit["body"]["prompt"] == "Human: What is in this picture?"


def _limits_proxy(
    cache: dict[tuple[int, int], RunningProxy],
    proxy_factory: Callable[..., RunningProxy],
    prompt_limit: int,
    system_limit: int,
) -> RunningProxy:
    key = (prompt_limit, system_limit)
    if key not in cache:
        cache[key] = proxy_factory(prompt_limit=prompt_limit, system_prompt_limit=system_limit)
    return cache[key]


_PROXIES_BY_LIMITS: dict[tuple[int, int], RunningProxy] = {}


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_strategy_vectors_reach_fal_exactly(
    case: dict[str, Any],
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Callable[..., list[dict[str, Any]]],
) -> None:
    running = _limits_proxy(
        _PROXIES_BY_LIMITS, proxy_factory, case["prompt_limit"], case["system_prompt_limit"]
    )
    make_client(running).chat.completions.create(model=MODEL, messages=case["messages"])
    (submit,) = sim_log("submit")
    expected = case["expected"]
    assert submit["body"]["prompt"] == expected["prompt"]
    assert submit["body"].get("system_prompt", "") == expected["system_prompt"]
    assert submit["body"].get("image_urls", []) == expected["image_urls"]


def test_langchain_invoke_and_stream(proxy: RunningProxy, recorder: Recorder) -> None:
    import httpx

    llm = ChatOpenAI(
        model=MODEL,
        base_url=proxy.v1,
        api_key="unused",  # type: ignore[arg-type]
        max_retries=0,
        stream_usage=True,
        http_client=httpx.Client(transport=ValidatingTransport(recorder)),
        http_async_client=httpx.AsyncClient(transport=AsyncValidatingTransport(recorder)),
    )
    message = llm.invoke("Hello from LangChain")
    assert message.content == "Simulated answer to: Hello from LangChain"
    assert message.usage_metadata is not None and message.usage_metadata["total_tokens"] > 0
    assert message.response_metadata["finish_reason"] == "stop"
    chunks = list(llm.stream("Streaming from LangChain"))
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.content == "Simulated answer to: Streaming from LangChain"
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] == 6


async def test_langchain_async(proxy: RunningProxy, recorder: Recorder) -> None:
    import httpx

    # Closed here: a client left to the garbage collector fails whichever test runs then.
    async with httpx.AsyncClient(transport=AsyncValidatingTransport(recorder)) as client:
        llm = ChatOpenAI(
            model=MODEL,
            base_url=proxy.v1,
            api_key="unused",  # type: ignore[arg-type]
            max_retries=0,
            http_async_client=client,
        )
        message = await llm.ainvoke([("system", "Be nice."), ("human", "async lc")])
    assert message.content == "Simulated answer to: async lc"
