"""translate/prompt.py: the System Top + Separator + Recency strategy, to the character."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fal_openai_proxy.openai.chat import ChatMessage
from fal_openai_proxy.translate.prompt import SEPARATOR, flatten_messages, message_text

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "prompt-strategy-vectors.json"
CASES: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["cases"]


def msgs(*raw: dict[str, Any]) -> list[ChatMessage]:
    return [ChatMessage.model_validate(m) for m in raw]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def test_vectors_file_is_not_empty() -> None:
    assert len(CASES) >= 10
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_prompt_strategy_vector(case: dict[str, Any]) -> None:
    messages = [ChatMessage.model_validate(m) for m in case["messages"]]
    flat = flatten_messages(messages, case["prompt_limit"], case["system_prompt_limit"])
    expected = case["expected"]
    assert flat.prompt == expected["prompt"]
    assert flat.system_prompt == expected["system_prompt"]
    assert flat.image_urls == expected["image_urls"]


def test_separator_sits_between_system_text_and_history() -> None:
    # Blocks: "Human: aaaa\n\n" (13), "Assistant: bbbb\n\n" (17), "Human: cccc\n\n" (13).
    messages = msgs(
        {"role": "system", "content": "rules"}, user("aaaa"), assistant("bbbb"), user("cccc")
    )
    flat = flatten_messages(messages, prompt_limit=20, system_prompt_limit=100)
    assert flat.prompt == "Human: cccc"
    assert flat.system_prompt == "System: rules" + SEPARATOR + "Human: aaaa\n\nAssistant: bbbb"
    assert flat.system_prompt.count(SEPARATOR) == 1


def test_history_without_system_text_has_no_separator() -> None:
    messages = msgs(user("aaaa"), assistant("bbbb"), user("cccc"))
    flat = flatten_messages(messages, prompt_limit=20, system_prompt_limit=100)
    assert flat.prompt == "Human: cccc"
    assert flat.system_prompt == "Human: aaaa\n\nAssistant: bbbb"
    assert SEPARATOR not in flat.system_prompt


def test_system_text_alone_has_no_separator() -> None:
    flat = flatten_messages(msgs({"role": "system", "content": "only"}), 100, 100)
    assert flat.system_prompt == "System: only"
    assert flat.prompt == ""


def test_developer_role_joins_system_text_in_order() -> None:
    messages = msgs(
        {"role": "developer", "content": "first"},
        {"role": "system", "content": "second"},
        user("hi"),
    )
    flat = flatten_messages(messages, 4800, 4800)
    assert flat.system_prompt == "System: first\n\nSystem: second"
    assert flat.prompt == "Human: hi"


@pytest.mark.parametrize(("filler", "kept"), [(26, True), (27, False)])
def test_history_budget_is_limit_minus_system_length_plus_four(filler: int, kept: bool) -> None:
    # system_text "System: abc" is 11 characters: remaining = 50 - (11 + 4) = 35.
    # The older block "Human: " + filler + "\n\n" is 9 + filler characters.
    old = "x" * filler
    messages = msgs({"role": "system", "content": "abc"}, user(old), user("z"))
    flat = flatten_messages(messages, prompt_limit=10, system_prompt_limit=50)
    assert flat.prompt == "Human: z"
    if kept:
        assert flat.system_prompt == f"System: abc{SEPARATOR}Human: {old}"
    else:
        assert flat.system_prompt == "System: abc"


@pytest.mark.parametrize(("filler", "kept"), [(26, True), (27, False)])
def test_history_budget_without_system_text_is_the_whole_limit(filler: int, kept: bool) -> None:
    old = "x" * filler
    messages = msgs(user(old), user("z"))
    flat = flatten_messages(messages, prompt_limit=10, system_prompt_limit=35)
    assert flat.prompt == "Human: z"
    assert flat.system_prompt == (f"Human: {old}" if kept else "")


def test_oldest_blocks_are_dropped_once_both_are_full() -> None:
    # Each block is 10 characters: the prompt holds one, the history one.
    messages = msgs(user("0"), user("1"), user("2"), user("3"))
    flat = flatten_messages(messages, prompt_limit=10, system_prompt_limit=12)
    assert flat.prompt == "Human: 3"
    assert flat.system_prompt == "Human: 2"
    assert "Human: 1" not in flat.prompt + flat.system_prompt
    assert "Human: 0" not in flat.prompt + flat.system_prompt


def test_shorter_older_block_is_not_tried_for_the_prompt_once_it_is_full() -> None:
    # newest (10) fits; the 23-char block does not; the oldest (10) would fit the prompt
    # but is not tried there: it goes to the history after the 23-char block.
    messages = msgs(user("a"), assistant("y" * 10), user("b"))
    flat = flatten_messages(messages, prompt_limit=20, system_prompt_limit=40)
    assert flat.prompt == "Human: b"
    assert flat.system_prompt == "Human: a\n\nAssistant: " + "y" * 10


def test_shorter_older_block_is_not_tried_for_the_history_once_it_is_full() -> None:
    # prompt takes "d"; history takes "c" (10), refuses the 23-char block, then stops.
    messages = msgs(user("a"), assistant("y" * 10), user("c"), user("d"))
    flat = flatten_messages(messages, prompt_limit=10, system_prompt_limit=30)
    assert flat.prompt == "Human: d"
    assert flat.system_prompt == "Human: c"


def test_newest_block_longer_than_prompt_limit_still_goes_in() -> None:
    long = "x" * 50
    messages = msgs(user("old"), user(long))
    flat = flatten_messages(messages, prompt_limit=10, system_prompt_limit=100)
    assert flat.prompt == f"Human: {long}"
    # The prompt is now full: the older block goes to the history.
    assert flat.system_prompt == "Human: old"


def test_tool_and_function_roles_are_skipped() -> None:
    messages = msgs(
        user("question"),
        {"role": "tool", "content": "TOOL-RESULT", "tool_call_id": "c1"},
        {"role": "function", "content": "FUNCTION-RESULT", "name": "f"},
        assistant("answer"),
    )
    flat = flatten_messages(messages, 4800, 4800)
    assert flat.prompt == "Human: question\n\nAssistant: answer"
    assert flat.system_prompt == ""


def test_text_parts_joined_and_images_collected_in_order() -> None:
    messages = msgs(
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x/1.png"}},
                {"type": "text", "text": "one"},
                {"type": "text", "text": "two"},
            ],
        },
        assistant("ok"),
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "three"},
                {"type": "image_url", "image_url": "https://x/2.png"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    )
    assert message_text(messages[0]) == "one\ntwo"
    flat = flatten_messages(messages, 4800, 4800)
    assert flat.prompt == "Human: one\ntwo\n\nAssistant: ok\n\nHuman: three"
    assert flat.image_urls == ["https://x/1.png", "https://x/2.png", "data:image/png;base64,AAAA"]


def test_image_only_message_has_empty_text() -> None:
    (message,) = msgs(
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}
    )
    assert message_text(message) == ""


def test_content_none_is_empty_text() -> None:
    messages = msgs(user("hi"), {"role": "assistant", "content": None})
    assert message_text(messages[1]) == ""
    flat = flatten_messages(messages, 4800, 4800)
    assert flat.prompt == "Human: hi\n\nAssistant:"
    assert flat.image_urls == []


def test_system_text_is_cut_to_its_limit_before_stripping() -> None:
    messages = msgs({"role": "system", "content": "abcdefghij"}, user("q"))
    flat = flatten_messages(messages, prompt_limit=100, system_prompt_limit=12)
    assert flat.system_prompt == "System: abcd"
    assert flat.prompt == "Human: q"
