"""What a new user tripped over (issue 14, part 4), each driven with the client they used:
media models sent to the text endpoints, LangChain's token-id embeddings, and the Agents SDK
recipe as docs/clients.md writes it."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from ..support.chat import Records, ask

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
