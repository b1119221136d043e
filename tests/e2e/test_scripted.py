"""Each scripted simulator behaviour, as an OpenAI client sees it through the proxy."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from ..conftest import CapturedLogs
from ..support.chat import MODEL, Records, ask, of, sim, tagged
from ..support.servers import RunningProxy


def drain(stream: Iterable[ChatCompletionChunk], into: list[ChatCompletionChunk]) -> None:
    """Read a stream to its end (or its error), keeping every chunk."""
    for chunk in stream:
        into.append(chunk)


def contents(chunks: list[ChatCompletionChunk]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


@pytest.fixture(scope="module")
def scripted(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    """Retries for up to 3 s (capped by the 1 s request timeout); gives up on silence fast."""
    return proxy_factory(
        retry_budget=3,
        key_rate_limit_cooldown=0,
        first_event_timeout=0.5,
        idle_timeout=0.5,
        request_timeout=1,
    )


@pytest.fixture
def client(scripted: RunningProxy, make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client(scripted)


# -- timing and event count ------------------------------------------------------------------


def test_events_arrive_one_by_one_at_the_scripted_interval(client: openai.OpenAI) -> None:
    text = "one two three four five six seven eight"
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ask(sim({"events": 4, "interval_ms": 80, "text": text})),
        stream=True,
    )
    arrivals: list[tuple[float, str]] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
    assert [delta for _, delta in arrivals] == [
        "one two",
        " three four",
        " five six",
        " seven eight",
    ]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(arrivals)]
    assert all(gap >= 0.06 for gap in gaps), f"chunks were buffered: gaps {gaps}"


def test_default_event_count_follows_the_directive(client: openai.OpenAI) -> None:
    text = " ".join(f"w{i}" for i in range(12))
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=ask(sim({"events": 6, "text": text})), stream=True
        )
    )
    deltas = contents(chunks)
    assert len(deltas) == 6
    assert "".join(deltas) == text


def test_latency_delays_the_first_chunk(client: openai.OpenAI) -> None:
    started = time.monotonic()
    stream = client.chat.completions.create(
        model=MODEL, messages=ask(sim({"latency_ms": 300}) + " late"), stream=True
    )
    first = next(iter(stream))
    waited = time.monotonic() - started
    assert first.choices[0].delta.role == "assistant"
    assert waited >= 0.28
    rest = "".join(c.choices[0].delta.content or "" for c in stream)
    assert rest == "Simulated answer to: late"


def test_latency_delays_a_non_stream_answer(client: openai.OpenAI) -> None:
    started = time.monotonic()
    completion = client.chat.completions.create(
        model=MODEL, messages=ask(sim({"latency_ms": 300}) + " slow")
    )
    assert time.monotonic() - started >= 0.28
    assert completion.choices[0].message.content == "Simulated answer to: slow"


# -- failures during a stream ----------------------------------------------------------------


def test_error_at_raises_after_the_earlier_content(client: openai.OpenAI) -> None:
    directive = {"events": 4, "error_at": 2, "error_message": "GPU fell over"}
    text = "alpha beta gamma delta"
    stream = client.chat.completions.create(
        model=MODEL, messages=ask(sim({**directive, "text": text})), stream=True
    )
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError) as caught:
        drain(stream, received)
    assert "".join(contents(received)) == "alpha beta"
    exc = caught.value
    assert not isinstance(exc, openai.APIStatusError)  # in-band, after a 200
    assert "GPU fell over" in exc.message
    assert exc.type == "upstream_error"


def test_error_at_raw_stream_ends_with_error_then_done(
    scripted: RunningProxy, http: httpx.Client
) -> None:
    body = {
        "model": MODEL,
        "stream": True,
        "messages": ask(sim({"events": 4, "error_at": 2, "error_message": "boom"})),
    }
    with http.stream("POST", scripted.v1 + "/chat/completions", json=body) as response:
        assert response.status_code == 200
        datas = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    error = json.loads(datas[-2])
    assert set(error) == {"error"}
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert "boom" in error["error"]["message"]
    chunks = [json.loads(d) for d in datas[:-2]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


@pytest.mark.parametrize("drop_at", [0, 2, 4])
def test_connection_dropped_mid_stream_is_an_error_not_a_hang(
    client: openai.OpenAI, drop_at: int
) -> None:
    started = time.monotonic()
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ask(sim({"events": 4, "drop_at": drop_at, "text": "a b c d"})),
        stream=True,
    )
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError) as caught:
        drain(stream, received)
    assert time.monotonic() - started < 1.5
    assert "a b c d".startswith("".join(contents(received)))
    assert caught.value.type == "upstream_error"


def test_rewritten_output_is_sent_whole_and_logged(
    client: openai.OpenAI, captured_logs: CapturedLogs
) -> None:
    start = len(captured_logs.lines)
    text = "alpha beta gamma delta"
    chunks = client.chat.completions.create(
        model=MODEL,
        messages=ask(sim({"events": 4, "rewrite_at": 2, "text": text})),
        stream=True,
    )
    joined = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # The simulator reverses the third cumulative value: "alpha beta gamma" -> "ammag ateb ahpla".
    rewritten = "ammag ateb ahpla delta"
    assert joined.startswith("alpha beta")
    assert joined.endswith(rewritten)
    assert joined == "alpha beta" + rewritten
    warnings = [
        entry
        for entry in map(json.loads, captured_logs.lines[start:])
        if entry["level"] == "warning" and "did not extend" in entry["msg"]
    ]
    assert warnings


# -- hangs -----------------------------------------------------------------------------------


def test_stream_that_hangs_after_headers_times_out_in_band(
    client: openai.OpenAI, sim_log: Records
) -> None:
    token, text = tagged(sim({"hang": True}))
    started = time.monotonic()
    stream = client.chat.completions.create(model=MODEL, messages=ask(text), stream=True)
    chunks: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError) as caught:
        drain(stream, chunks)
    assert time.monotonic() - started < 2
    exc = caught.value
    assert not isinstance(exc, openai.APIStatusError)
    assert exc.type == "timeout_error"
    assert exc.code == "upstream_timeout"
    assert [c.choices[0].delta.role for c in chunks] == ["assistant"]
    assert len(of(sim_log("stream"), token)) == 1


def test_non_stream_that_hangs_is_504_and_cancelled(
    client: openai.OpenAI, sim_log: Records
) -> None:
    token, text = tagged(sim({"hang": True}))
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text))
    assert time.monotonic() - started < 2
    exc = caught.value
    assert exc.status_code == 504
    assert exc.type == "timeout_error"
    assert exc.code == "upstream_timeout"
    (submit,) = of(sim_log("submit"), token)
    cancels = [r for r in sim_log("cancel") if r["request_id"] == submit["request_id"]]
    assert len(cancels) == 1
    assert cancels[0]["method"] == "PUT"


# -- queue errors and retries ----------------------------------------------------------------


def test_queue_completed_with_error_is_502(client: openai.OpenAI, sim_log: Records) -> None:
    token, text = tagged(sim({"completed_error": "model crashed", "latency_ms": 50}))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text))
    assert caught.value.status_code == 502
    assert "model crashed" in caught.value.message
    assert len(of(sim_log("submit"), token)) == 1  # never resubmitted once fal took it


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_429_twice_is_retried_to_success(
    client: openai.OpenAI, sim_log: Records, stream: bool
) -> None:
    tag = uuid.uuid4().hex
    token, text = tagged(sim({"fail_times": 2, "status": 429, "tag": tag}) + " persist")
    if stream:
        chunks = client.chat.completions.create(model=MODEL, messages=ask(text), stream=True)
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = client.chat.completions.create(model=MODEL, messages=ask(text))
        answer = completion.choices[0].message.content or ""
    assert answer == f"Simulated answer to: {token}  persist"
    assert len(of(sim_log("stream" if stream else "submit"), token)) == 3


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_429_not_retryable_is_tried_once(
    client: openai.OpenAI, sim_log: Records, stream: bool
) -> None:
    directive = {
        "fail_times": 2,
        "status": 429,
        "tag": uuid.uuid4().hex,
        "headers": {"X-Fal-Retryable": False},
    }
    token, text = tagged(sim(directive))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text), stream=stream)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"]
    assert len(of(sim_log("stream" if stream else "submit"), token)) == 1
