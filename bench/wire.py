"""One request of each kind, checked for the right answer and timed.

Four kinds: the proxy's non-stream and stream chat completion, and the direct fal calls they
stand for (queue submit + status stream + result; the run ``/stream`` call).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from .processes import FAL_KEY

MODEL = "google/gemini-2.5-flash"
APP = "openrouter/router"
ANSWER_PREFIX = "Simulated answer to: "
REQUEST_TIMEOUT_S = 60.0
_WORDS = "abcdefghijklmnopqrstuvwxyz"
_JSON = {"Content-Type": "application/json"}
_FAL_HEADERS = {"Authorization": f"Key {FAL_KEY}", "Content-Type": "application/json"}


class BadAnswer(Exception):
    """The response was not the one expected (status, shape or text)."""


@dataclass(frozen=True)
class Endpoints:
    proxy: str
    run: str
    queue: str
    proxy_headers: dict[str, str] = field(default_factory=lambda: dict(_JSON))  # + a client key


@dataclass(frozen=True)
class Question:
    text: str  # what the user asks, directives included
    expected: str  # the exact content the answer must have


class Questions:
    """Unique questions, so that a response for the wrong request cannot pass the check."""

    def __init__(self, tag: str) -> None:
        self._tag = tag
        self._counter = itertools.count()

    def next(self, words: int = 4, directive: dict[str, Any] | None = None) -> Question:
        # The simulator answers in as many events as the answer has words (at most).
        n = next(self._counter)
        filler = " ".join(_WORDS[i % len(_WORDS)] for i in range(max(0, words - 1)))
        question = f"q{self._tag}-{n} {filler}".strip()
        prefix = "[[sim " + orjson.dumps(directive).decode() + "]] " if directive else ""
        return Question(prefix + question, ANSWER_PREFIX + question)


@dataclass
class Outcome:
    """One request: when it started and ended, when content arrived, and what went wrong."""

    started: float
    finished: float = 0.0
    content_times: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def first_content(self) -> float | None:
        return self.content_times[0] - self.started if self.content_times else None

    @property
    def duration(self) -> float:
        return self.finished - self.started


Kind = Callable[[aiohttp.ClientSession, Endpoints, Question], Awaitable[Outcome]]


def _timed(
    body: Callable[[aiohttp.ClientSession, Endpoints, Question, Outcome], Awaitable[None]],
) -> Kind:
    """Wrap a request body: time it, bound it, and turn any failure into ``Outcome.error``."""

    async def run(session: aiohttp.ClientSession, ep: Endpoints, q: Question) -> Outcome:
        out = Outcome(time.perf_counter())
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await body(session, ep, q, out)
        except BadAnswer as exc:
            out.error = str(exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            out.error = f"{type(exc).__name__}: {exc}"[:200]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            out.error = f"malformed response: {type(exc).__name__}: {exc}"[:200]
        out.finished = time.perf_counter()
        return out

    return run


def fal_input(q: Question) -> bytes:
    return orjson.dumps({"model": MODEL, "prompt": "Human: " + q.text, "reasoning": False})


def chat_body(q: Question, stream: bool) -> bytes:
    messages = [{"role": "user", "content": q.text}]
    return orjson.dumps({"model": MODEL, "messages": messages, "stream": stream})


async def _json(resp: aiohttp.ClientResponse, what: str) -> Any:
    body = await resp.read()
    if resp.status != 200:
        raise BadAnswer(f"{what}: HTTP {resp.status} {body[:120]!r}")
    return orjson.loads(body)


def _check_text(got: Any, q: Question) -> None:
    if got != q.expected:
        raise BadAnswer(f"wrong text: {str(got)[:80]!r}")


class SSEReader:
    """Splits an event stream into the ``data`` of each event, as bytes arrive."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        *blocks, self._pending = (self._pending + chunk).split(b"\n\n")
        found = []
        for block in blocks:
            data = [line[5:].lstrip(b" ") for line in block.split(b"\n") if line[:5] == b"data:"]
            if data:  # comments (keep-alives) carry no data
                found.append(b"\n".join(data))
        return found


async def _direct_complete(
    session: aiohttp.ClientSession, ep: Endpoints, q: Question, out: Outcome
) -> None:
    async with session.post(f"{ep.queue}/{APP}", data=fal_input(q), headers=_FAL_HEADERS) as r:
        submitted = await _json(r, "submit")
    status_url = f"{submitted['status_url']}/stream?logs=0"
    async with session.get(status_url, headers=_FAL_HEADERS) as r:
        if r.status != 200:
            raise BadAnswer(f"status stream: HTTP {r.status}")
        last = await _last_status(r)
    if last.get("status") != "COMPLETED" or last.get("error"):
        raise BadAnswer(f"status stream ended with {last}")
    async with session.get(submitted["response_url"], headers=_FAL_HEADERS) as r:
        result = await _json(r, "result")
    _check_text(result.get("output"), q)


async def _last_status(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    # Read to the end so that the connection goes back to the pool.
    reader, last = SSEReader(), {}
    async for chunk in resp.content.iter_any():
        for data in reader.feed(chunk):
            last = orjson.loads(data)
    return last


async def _proxy_complete(
    session: aiohttp.ClientSession, ep: Endpoints, q: Question, out: Outcome
) -> None:
    url = f"{ep.proxy}/v1/chat/completions"
    async with session.post(url, data=chat_body(q, stream=False), headers=ep.proxy_headers) as r:
        body = await _json(r, "chat completion")
    choice = body["choices"][0]
    if choice.get("finish_reason") != "stop":
        raise BadAnswer(f"finish_reason {choice.get('finish_reason')!r}")
    _check_text(choice["message"]["content"], q)


async def _direct_stream(
    session: aiohttp.ClientSession, ep: Endpoints, q: Question, out: Outcome
) -> None:
    url = f"{ep.run}/{APP}/stream"
    output, final = "", False
    async with session.post(url, data=fal_input(q), headers=_FAL_HEADERS) as r:
        if r.status != 200:
            raise BadAnswer(f"stream: HTTP {r.status}")
        reader = SSEReader()
        async for chunk in r.content.iter_any():
            now = time.perf_counter()
            for data in reader.feed(chunk):
                event = orjson.loads(data)
                if event.get("error") or final:
                    raise BadAnswer(f"unexpected event {event}")
                new = event.get("output") or ""
                if not new.startswith(output):
                    raise BadAnswer("output is not cumulative")
                if len(new) > len(output):
                    out.content_times.append(now)
                output, final = new, event.get("partial") is False
    if not final:
        raise BadAnswer("stream ended without its final event")
    _check_text(output, q)


async def _proxy_stream(
    session: aiohttp.ClientSession, ep: Endpoints, q: Question, out: Outcome
) -> None:
    url = f"{ep.proxy}/v1/chat/completions"
    parts: list[str] = []
    finish, done = None, False
    async with session.post(url, data=chat_body(q, stream=True), headers=ep.proxy_headers) as r:
        if r.status != 200:
            raise BadAnswer(f"stream: HTTP {r.status} {(await r.read())[:120]!r}")
        reader = SSEReader()
        async for chunk in r.content.iter_any():
            now = time.perf_counter()
            for data in reader.feed(chunk):
                if done:
                    raise BadAnswer("data after [DONE]")
                if data == b"[DONE]":
                    done = True
                    continue
                finish = _read_chunk(orjson.loads(data), parts, out, now) or finish
    if not done or finish != "stop":
        raise BadAnswer(f"short stream: done={done} finish_reason={finish!r}")
    _check_text("".join(parts), q)


def _read_chunk(chunk: dict[str, Any], parts: list[str], out: Outcome, now: float) -> str | None:
    """Collect a chunk's content; return its finish_reason."""
    if "error" in chunk:
        raise BadAnswer(f"error frame {chunk['error']}")
    choice = chunk["choices"][0]
    content = choice["delta"].get("content")
    if content:
        parts.append(content)
        out.content_times.append(now)
    reason: str | None = choice.get("finish_reason")
    return reason


direct_complete: Kind = _timed(_direct_complete)
proxy_complete: Kind = _timed(_proxy_complete)
direct_stream: Kind = _timed(_direct_stream)
proxy_stream: Kind = _timed(_proxy_stream)


def expecting_chunks(kind: Kind, count: int) -> Kind:
    """A stream kind that also fails when the content did not arrive in ``count`` pieces,
    one per simulator event (a short or merged stream)."""

    async def run(session: aiohttp.ClientSession, ep: Endpoints, q: Question) -> Outcome:
        out = await kind(session, ep, q)
        if out.ok and len(out.content_times) != count:
            out.error = f"{len(out.content_times)} content chunks, expected {count}"
        return out

    return run
