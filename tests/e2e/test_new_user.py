"""What a new user tripped over (issue 14, part 4), each driven with the client they used:
media models sent to the text endpoints, LangChain's token-id embeddings, and the Agents SDK
recipe as docs/clients.md writes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from ..support.chat import Records, ask
from ..support.servers import RunningProxy

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


# -- the model is checked before the route is chosen -------------------------------------------


@pytest.mark.parametrize("model", ["fal-ai/flux/dev", "dall-e-3", "whisper-1", "tts-1"])
@pytest.mark.parametrize(
    "extra",
    [{}, {"stream": True}, {"tools": [WEATHER]}, {"tools": [WEATHER], "stream": True},
     {"response_format": {"type": "json_object"}}, {"n": 2}],
    ids=["plain", "stream", "tools", "tools-stream", "json", "n"],
)  # fmt: skip
def test_a_media_model_gets_the_same_400_on_every_chat_path(
    client: openai.OpenAI, sim_log: Records, model: str, extra: dict[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=ask("hi"), **extra)
    assert (caught.value.code, caught.value.param) == ("model_not_supported", "model")
    assert "image or audio model" in caught.value.message
    assert sim_log() == []  # decided before any call to fal


@pytest.mark.parametrize("stream", [False, True])
def test_a_media_model_on_the_responses_api_is_the_same_400(
    client: openai.OpenAI, sim_log: Records, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="fal-ai/flux/dev", input="hi", stream=stream)
    assert (caught.value.code, caught.value.param) == ("model_not_supported", "model")
    assert sim_log() == []


def test_a_media_model_on_embeddings_is_the_same_400(
    client: openai.OpenAI, sim_log: Records
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="whisper-1", input="hi")
    assert (caught.value.code, caught.value.param) == ("model_not_supported", "model")
    assert sim_log() == []


# -- LangChain's embeddings ---------------------------------------------------------------------


@pytest.mark.parametrize("tokens", [[[9906, 1917], [15339]], [9906, 1917]], ids=["lists", "one"])
def test_token_ids_get_a_400_that_says_how_to_make_langchain_send_text(
    client: openai.OpenAI, sim_log: Records, tokens: list[Any]
) -> None:
    # What OpenAIEmbeddings sends by default (lists of token ids; tiktoken needs a download
    # this machine cannot make, so the same body is sent with the openai SDK).
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input=tokens)
    assert caught.value.param == "input[0]"
    assert "check_embedding_ctx_length=False" in caught.value.message
    assert sim_log() == []


def test_langchain_embeddings_as_the_docs_write_them(proxy: RunningProxy) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model="openai/text-embedding-3-small",
        base_url=proxy.v1,
        api_key="unused",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    vectors = embeddings.embed_documents(["a lighthouse", "a harbour"])
    assert len(vectors) == 2 and all(len(v) > 0 for v in vectors)
    assert vectors[0] != vectors[1]


# -- the OpenAI Agents SDK, as docs/clients.md writes it -----------------------------------------

CLIENTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


def agents_recipe() -> str:
    section = CLIENTS_DOC.read_text().split("## OpenAI Agents SDK", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def run_recipe(code: str, proxy: RunningProxy, tmp_path: Path) -> str:
    """The recipe as a user runs it: a script of its own, in a process of its own."""
    assert "http://127.0.0.1:3000/v1" in code and '"your API_KEY"' in code
    code = code.replace("http://127.0.0.1:3000/v1", proxy.v1).replace('"your API_KEY"', '"x"')
    script = tmp_path / "agent.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("model_class", ["OpenAIChatCompletionsModel", "OpenAIResponsesModel"])
def test_the_agents_sdk_recipe_runs_as_written(
    proxy: RunningProxy,
    sim_log: Records,
    tmp_path: Path,
    model_class: str,
) -> None:
    code = agents_recipe().replace("OpenAIChatCompletionsModel", model_class)
    printed = run_recipe(code, proxy, tmp_path)
    # The simulated model called the tool, then quoted what it returned.
    assert printed.strip().startswith("The tool returned: 21 C and sunny in"), printed
    endpoint = "chat/completions" if "Chat" in model_class else "responses"
    calls = [r for r in sim_log("openai") if r["path"].endswith(endpoint)]
    assert len(calls) == 2  # the tool call, then the answer
    assert calls[0]["body"]["model"] == "google/gemini-2.5-flash"
