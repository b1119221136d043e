"""The tokenizer behind /v1/messages/count_tokens: tiktoken's `cl100k_base`, from the data
file shipped in this package (data/cl100k_base.tiktoken.gz, checked against tiktoken's own
hash), never downloaded. Loaded once per process at start-up, before the server takes
requests (~0.3 s, ~40 MB): built while requests are served, it would stall them.

Claude's own tokenizer is not public: counts are an estimate (docs/anthropic.md).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
from collections.abc import Callable
from importlib import resources

import tiktoken

DATA_FILE = "cl100k_base.tiktoken.gz"
# tiktoken_ext/openai_public.py, `cl100k_base`: the hash of the uncompressed file.
DATA_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
PATTERN = (  # tiktoken_ext/openai_public.py, `cl100k_base`
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
    r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


# Texts this long are remembered (a dict lookup hashes them at ~1 GB/s, tiktoken counts at a
# few MB/s): an agent sends the same system prompt and tools every turn. The memo holds at most
# MEMO_MAX_CHARS characters of text, the oldest dropped first.
MEMO_MIN_CHARS = 256
MEMO_MAX_CHARS = 4_000_000


class TokenizerDataError(Exception):
    """The shipped data file is missing or altered."""


def load_encoding() -> tiktoken.Encoding:
    raw = gzip.decompress(
        resources.files("fal_openai_proxy").joinpath("data", DATA_FILE).read_bytes()
    )
    if hashlib.sha256(raw).hexdigest() != DATA_SHA256:
        raise TokenizerDataError(f"{DATA_FILE} does not match tiktoken's cl100k_base")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in raw.splitlines() if line)
    }
    return tiktoken.Encoding(
        "cl100k_base", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens={}
    )


class Tokenizer:
    """`counter()` gives the counting function; `load()` at start-up makes it ready."""

    def __init__(self) -> None:
        self._encoding: tiktoken.Encoding | None = None
        self._loading: asyncio.Future[tiktoken.Encoding] | None = None
        self._memo: dict[str, int] = {}  # counts of long texts (system prompts, tools)
        self._memo_chars = 0

    def load(self) -> None:
        if self._encoding is None:
            self._encoding = load_encoding()

    async def counter(self) -> Callable[[str], int]:
        """The counting function (an app without its start-up, as in unit tests, loads the
        tokenizer in a thread on first use)."""
        encoding = self._encoding
        if encoding is None:
            if self._loading is None:
                self._loading = asyncio.get_running_loop().run_in_executor(None, load_encoding)
            encoding = self._encoding = await asyncio.shield(self._loading)
        return self._cached(encoding)

    def _cached(self, encoding: tiktoken.Encoding) -> Callable[[str], int]:
        memo = self._memo

        def count(text: str) -> int:
            if len(text) < MEMO_MIN_CHARS or len(text) > MEMO_MAX_CHARS:
                return len(encoding.encode_ordinary(text))
            tokens = memo.get(text)
            if tokens is None:
                tokens = len(encoding.encode_ordinary(text))
                self._memo_chars += len(text)
                while self._memo_chars > MEMO_MAX_CHARS:
                    oldest = next(iter(memo))
                    self._memo_chars -= len(oldest)
                    del memo[oldest]
                memo[text] = tokens
            return tokens

        return count
