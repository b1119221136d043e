"""translate/request.py: which fal app is called, and with which input fields."""

from __future__ import annotations

from typing import Any

import pytest

from fal_openai_proxy.openai.chat import ChatCompletionRequest
from fal_openai_proxy.translate.request import FalCall, build_fal_call

CHAT_APP = "openrouter/router"
VISION_APP = "openrouter/router/vision"
HI = [{"role": "user", "content": "hi"}]


def call(limits: tuple[int, int] = (4800, 4800), **fields: Any) -> FalCall:
    body = {"model": "openai/gpt-4.1", "messages": HI, **fields}
    request = ChatCompletionRequest.model_validate(body)
    return build_fal_call(
        request,
        chat_app=CHAT_APP,
        vision_app=VISION_APP,
        prompt_limit=limits[0],
        system_prompt_limit=limits[1],
    )


def test_text_request_goes_to_chat_app_with_minimal_fields() -> None:
    result = call()
    assert result.app == CHAT_APP
    assert result.input == {"model": "openai/gpt-4.1", "prompt": "Human: hi", "reasoning": False}


def test_system_prompt_sent_when_not_empty() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *HI]
    result = call(messages=messages)
    assert result.input["system_prompt"] == "System: Be brief."
    assert result.input["prompt"] == "Human: hi"


def test_image_part_anywhere_selects_vision_app() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
            ],
        },
        {"role": "assistant", "content": "a cat"},
        {"role": "user", "content": "and now?"},
    ]
    result = call(messages=messages)
    assert result.app == VISION_APP
    assert result.input["image_urls"] == ["https://x/a.png"]
    assert result.input["prompt"] == "Human: look\n\nAssistant: a cat\n\nHuman: and now?"


def test_text_parts_only_stay_on_chat_app() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "plain"}]}]
    result = call(messages=messages)
    assert result.app == CHAT_APP
    assert "image_urls" not in result.input


def test_temperature_zero_is_sent() -> None:
    result = call(temperature=0)
    assert result.input["temperature"] == 0
    assert "max_tokens" not in result.input


def test_temperature_and_max_tokens_sent_when_given() -> None:
    result = call(temperature=0.7, max_tokens=64)
    assert result.input["temperature"] == 0.7
    assert result.input["max_tokens"] == 64


def test_max_completion_tokens_becomes_max_tokens() -> None:
    result = call(max_completion_tokens=99)
    assert result.input["max_tokens"] == 99
    assert "max_completion_tokens" not in result.input


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert call(max_tokens=10, max_completion_tokens=20).input["max_tokens"] == 20


def test_unsent_optional_fields_are_absent() -> None:
    result = call(top_p=0.5, seed=3, user="u", presence_penalty=1)
    assert set(result.input) == {"model", "prompt", "reasoning"}


def test_limits_are_applied() -> None:
    messages = [{"role": "user", "content": "older"}, {"role": "user", "content": "newer"}]
    result = call(limits=(15, 100), messages=messages)
    assert result.input["prompt"] == "Human: newer"
    assert result.input["system_prompt"] == "Human: older"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, False),
        ({"reasoning": True}, True),
        ({"reasoning": False}, False),
        ({"reasoning_effort": "low"}, True),
        ({"reasoning_effort": "high"}, True),
        ({"reasoning_effort": "none"}, False),
        ({"reasoning": {"effort": "high"}}, True),
        ({"reasoning": {"effort": "none"}}, False),
        ({"reasoning": {"enabled": False}}, False),
        ({"reasoning": {"enabled": True}}, True),
        ({"reasoning": {"max_tokens": 500}}, True),
    ],
    ids=str,
)
def test_reasoning_forms(fields: dict[str, Any], expected: bool) -> None:
    value = call(**fields).input["reasoning"]
    assert type(value) is bool
    assert value is expected
