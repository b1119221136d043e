"""POST /v1/completions (legacy text completions, which autocomplete tools still use) with the
openai SDK's `client.completions.create`, stream and not, on fal's prompt apps; every body
and chunk is checked against OpenAI's `CreateCompletionResponse` by the schema guard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from ..support.chat import MODEL, Records, of, sim, tagged
from ..support.servers import RunningProxy


def test_a_completion_is_a_text_completion_object(client: openai.OpenAI, sim_log: Records) -> None:
    token, prompt = tagged("def fibonacci(n):")
    completion = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=64, temperature=0.2
    )
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.model == MODEL
    (choice,) = completion.choices
    assert choice.text == f"Simulated answer to: {prompt}"
    assert (choice.index, choice.logprobs, choice.finish_reason) == (0, None, "stop")
    assert completion.usage is not None and completion.usage.total_tokens > 0
    (call,) = of(sim_log("submit"), token)
    assert call["app"] == "openrouter/router"  # fal's prompt app
    body = call["body"]
    assert (body["prompt"], body["model"]) == (prompt, MODEL)
    assert (body["max_tokens"], body["temperature"]) == (64, 0.2)
    assert "system_prompt" not in body


def test_a_streamed_completion(client: openai.OpenAI, sim_log: Records) -> None:
    token, prompt = tagged("Once upon a time")
    chunks = list(
        client.completions.create(
            model=MODEL, prompt=prompt, stream=True, stream_options={"include_usage": True}
        )
    )
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert len(texts) > 2  # it streamed, piece by piece
    assert "".join(texts) == f"Simulated answer to: {prompt}"
    assert all(c.object == "text_completion" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert len(of(sim_log("stream"), token)) == 1


def test_stop_sequences_cut_the_text(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="count: one two", stop=[" two"])
    assert completion.choices[0].text == "Simulated answer to: count: one"
    chunks = client.completions.create(
        model=MODEL, prompt="count: one two", stop=" two", stream=True
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == (
        "Simulated answer to: count: one"
    )


def test_bare_openai_ids_and_a_one_string_list(client: openai.OpenAI, sim_log: Records) -> None:
    token, prompt = tagged("hello")
    completion = client.completions.create(model="gpt-4o-mini", prompt=[prompt])
    assert completion.model == "gpt-4o-mini"
    (call,) = of(sim_log("submit"), token)
    assert call["body"]["model"] == "openai/gpt-4o-mini"


def test_a_long_prompt_keeps_its_end_as_the_prompt(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
) -> None:
    client = make_client(proxy_factory(prompt_limit=20, system_prompt_limit=10))
    text = "0123456789" * 3 + "the end of it"  # 43 characters
    client.completions.create(model=MODEL, prompt=text)
    (call,) = sim_log("submit")
    assert call["body"]["prompt"] == text[-20:] == "3456789the end of it"
    assert call["body"]["system_prompt"] == text[13:23]  # the 10 before; older ones dropped


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"suffix": "return result"}, "suffix"),
        ({"n": 2}, "n"),
        ({"best_of": 3}, "best_of"),
        ({"logprobs": 1}, "logprobs"),
        ({"echo": True}, "echo"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": [[1, 2]]}, "prompt"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_what_fal_cannot_honour_is_a_400_naming_it(
    client: openai.OpenAI, sim_log: Records, extra: dict[str, Any], param: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "prompt": "x", **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(**body)
    assert caught.value.param == param
    if param == "suffix":
        assert "fill-in-the-middle" in caught.value.message
    assert sim_log() == []


def test_a_missing_prompt_and_a_media_model(proxy: RunningProxy, http: httpx.Client) -> None:
    response = http.post(proxy.v1 + "/completions", json={"model": MODEL})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"
    response = http.post(proxy.v1 + "/completions", json={"model": "dall-e-3", "prompt": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "model_not_supported"
    response = http.post(proxy.v1 + "/completions", json={"model": "llama3", "prompt": "x"})
    assert response.status_code == 404


def test_fal_failures_map_as_for_chat(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="x " + sim({"status": 422}))
    chunks = client.completions.create(model=MODEL, prompt="x " + sim({"error_at": 2}), stream=True)
    with pytest.raises(openai.APIError):
        list(chunks)
