"""``python -m bench.tokens``: how long /v1/messages/count_tokens's estimate takes, without
HTTP: parsing the body and counting (translate/anthropic_tokens.py with the shipped
tokenizer), for a typical coding prompt and for a Claude Code-sized request.

A benchmark, not a test: the machine may be shared, so it reports the best and the median of
many rounds, and the load time of the tokenizer.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from fal_openai_proxy.anthropic.messages import parse_count_tokens_body
from fal_openai_proxy.services.tokens import Tokenizer, load_encoding
from fal_openai_proxy.translate.anthropic_tokens import count_request

SOURCE = Path(__file__).resolve().parents[1] / "src" / "fal_openai_proxy"


def coding_prompt() -> dict[str, Any]:
    """A question about one ~4 KB source file: a typical coding prompt."""
    code = (SOURCE / "services" / "chat.py").read_text()[:4000]
    question = f"Why does this fail?\n\n{code}"
    return {"model": "anthropic/claude-sonnet-4.5", "system": "You are a careful engineer.",
            "messages": [{"role": "user", "content": question}]}  # fmt: skip


def agent_request() -> dict[str, Any]:
    """Claude Code's size: ~15 KB of system prompt, 20 tools, a few turns with tool results."""
    texts = [p.read_text() for p in sorted((SOURCE / "services").glob("*.py"))]
    tools = [{"name": f"tool_{i}", "description": texts[i % len(texts)][:1500],
              "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
             for i in range(20)]  # fmt: skip
    turns: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing test."}]
    for i in range(3):
        turns.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}",
                      "name": "tool_0", "input": {"path": f"file{i}.py"}}]})  # fmt: skip
        turns.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}",
                      "content": texts[i][:6000]}]})  # fmt: skip
    return {
        "model": "anthropic/claude-sonnet-4.5",
        "system": "\n".join(texts)[:15000],
        "tools": tools,
        "messages": turns,
    }


def measure(name: str, body: bytes, count: Callable[[str], int], rounds: int = 300) -> None:
    times = []
    tokens = 0
    for _ in range(rounds):
        started = time.perf_counter()
        tokens = count_request(parse_count_tokens_body(body), count)
        times.append(time.perf_counter() - started)
    best, median = min(times) * 1000, statistics.median(times) * 1000
    print(
        f"{name:28} {len(body):>8} B {tokens:>7} tokens  best {best:.3f} ms  median {median:.3f} ms"
    )


def main() -> None:
    started = time.perf_counter()
    encoding = load_encoding()
    print(f"tokenizer load: {time.perf_counter() - started:.2f} s")

    def count(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    measure("typical coding prompt", orjson.dumps(coding_prompt()), count)
    measure("Claude Code-sized request", orjson.dumps(agent_request()), count, rounds=100)
    # As the service counts: long texts remembered, so an agent's next turn is a lookup.
    remembered = Tokenizer()._cached(encoding)
    measure("  same, texts remembered", orjson.dumps(agent_request()), remembered, rounds=100)


if __name__ == "__main__":
    main()
