"""count_tokens' tokenizer: the shipped data file, and the memo of long texts."""

from __future__ import annotations

from typing import Any

import pytest

from fal_openai_proxy.services import tokens
from fal_openai_proxy.services.tokens import Tokenizer


async def test_the_shipped_tokenizer_counts_as_cl100k_does() -> None:
    count = await Tokenizer().counter()
    assert count("hello world") == 2  # tiktoken's cl100k_base: "hello", " world"
    assert count("def f(x):\n    return x\n") > 5


class CountingEncoding:
    def __init__(self) -> None:
        self.calls = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.calls += 1
        return [0] * len(text.split())


def test_long_texts_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "MEMO_MIN_CHARS", 10)
    monkeypatch.setattr(tokens, "MEMO_MAX_CHARS", 100)
    encoding = CountingEncoding()
    tokenizer = Tokenizer()
    count = tokenizer._cached(encoding)  # type: ignore[arg-type]
    long = "word " * 10  # 50 characters
    assert count(long) == count(long) == 10 and encoding.calls == 1
    assert count("short") == 1 and count("short") == 1 and encoding.calls == 3
    others: list[Any] = ["other " * 9, "third " * 9]  # 54 each: the oldest must go
    for text in others:
        count(text)
    memo = tokenizer._memo
    assert sum(len(t) for t in memo) <= 100 and long not in memo and others[1] in memo
