"""Deterministic answers and their streamed, cumulative event sequence."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .apps import AppSpec
from .directives import Directives
from .validation import ChatInput

_WORD = re.compile(r"\S+")
_TURN = "Human: "
_SUBJECT_MAX = 200
# Events carry the cumulative output, so N events of a text of T bytes weigh N*T/2 bytes:
# the event count is reduced to keep a stream's events under this.
MAX_STREAM_BYTES = 64 * 1024 * 1024

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    """What the simulated model produced for one input."""

    output: str
    reasoning: str | None
    usage: dict[str, Any] | None

    def body(self) -> dict[str, Any]:
        """The run / queue-result JSON body."""
        out: dict[str, Any] = {"output": self.output}
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning
        out["partial"] = False
        out["error"] = None
        if self.usage is not None:
            out["usage"] = self.usage
        return out


def count_words(text: str | None) -> int:
    return len(text.split()) if text else 0


def subject(clean_prompt: str) -> str:
    """The last human turn of a flattened conversation, trimmed for echoing back."""
    idx = clean_prompt.rfind(_TURN)
    tail = clean_prompt[idx + len(_TURN) :] if idx >= 0 else clean_prompt
    return tail.strip()[:_SUBJECT_MAX]


def cut_words(text: str, limit: int) -> str:
    """Keep the first ``limit`` whitespace-separated words, with their original spacing."""
    for i, match in enumerate(_WORD.finditer(text), start=1):
        if i == limit:
            return text[: match.end()]
    return text


def render(inp: ChatInput, clean_prompt: str, app: AppSpec, d: Directives) -> Answer:
    """Build the answer; ``clean_prompt`` is the prompt with directives removed."""
    topic = subject(clean_prompt)
    if d.text is not None:
        output = d.text
    else:
        output = "Simulated answer to: " + topic
        if inp.image_urls:
            output += f" [images: {len(inp.image_urls)}]"
        if inp.max_tokens is not None:
            output = cut_words(output, inp.max_tokens)
    reasoning = d.reasoning_text
    if reasoning is None and inp.reasoning:
        reasoning = "Thinking about: " + topic
    with_usage = app.router if d.usage is None else d.usage
    usage = _usage(inp, output, reasoning) if with_usage else None
    if usage is not None and d.no_cost:
        del usage["cost"]
    return Answer(output, reasoning, usage)


def _usage(inp: ChatInput, output: str, reasoning: str | None) -> dict[str, Any]:
    prompt_tokens = count_words(inp.system_prompt) + count_words(inp.prompt)
    completion_tokens = count_words(output) + count_words(reasoning)
    # OpenRouter-style usage as in fal's openrouter/router docs example; price is arbitrary.
    cost = round(prompt_tokens * 1e-6 + completion_tokens * 2e-6, 9)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost": cost,
    }


def pieces(text: str, count: int) -> list[str]:
    """Split ``text`` into at most ``count`` cumulative prefixes, evenly by words."""
    ends = [m.end() for m in _WORD.finditer(text)]
    n = max(1, min(count, len(ends)))
    if not ends:
        return [text]
    words = len(ends)
    cuts = [ends[-(-words * k // n) - 1] for k in range(1, n)]
    cuts.append(len(text))
    return [text[:c] for c in cuts]


def _diverge(previous: str, text: str) -> str:
    """A variant of ``text`` that does not extend ``previous`` (used by ``rewrite_at``)."""
    for candidate in (text[::-1], "Rewritten: " + text, "#" + text[::-1]):
        if not previous or not candidate.startswith(previous):
            return candidate
    return "#" + text


def _rewrite(parts: list[str], index: int) -> list[str]:
    previous = parts[index - 1] if index > 0 else ""
    pivot = parts[index]
    new = _diverge(previous, pivot)
    return parts[:index] + [new + p[len(pivot) :] for p in parts[index:]]


def stream_events(answer: Answer, count: int, rewrite_at: int | None) -> list[Event]:
    """Every event of a stream, in order; the last one is the final ``partial: false`` event."""
    size = len(answer.output) + len(answer.reasoning or "")
    count = max(1, min(count, 2 * MAX_STREAM_BYTES // max(size, 1)))
    thoughts = pieces(answer.reasoning, count) if answer.reasoning is not None else []
    outputs = pieces(answer.output, count)
    final_output = answer.output
    if rewrite_at is not None and rewrite_at >= 0:
        if rewrite_at < len(thoughts):
            thoughts = _rewrite(thoughts, rewrite_at)
        elif rewrite_at < len(thoughts) + len(outputs):
            outputs = _rewrite(outputs, rewrite_at - len(thoughts))
        final_output = outputs[-1]
        if rewrite_at == len(thoughts) + len(outputs):  # the final event itself
            final_output = _diverge(outputs[-1], final_output)
    events: list[Event] = [
        {"output": "", "reasoning": t, "partial": True, "error": None} for t in thoughts
    ]
    reasoning = thoughts[-1] if thoughts else None
    for part in outputs:
        events.append(_event(part, reasoning, partial=True))
    final = _event(final_output, reasoning, partial=False)
    if answer.usage is not None:
        final["usage"] = answer.usage
    events.append(final)
    return events


def _event(output: str, reasoning: str | None, *, partial: bool) -> Event:
    event: Event = {"output": output}
    if reasoning is not None:
        event["reasoning"] = reasoning
    event["partial"] = partial
    event["error"] = None
    return event
