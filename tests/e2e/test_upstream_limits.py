"""What fal (or whatever answers at its URLs) may send back is bounded: a stream's line and
event (both SSE decoders: fal's `/stream` and fal's OpenAI route), and an answer read whole.
Beyond, a non-stream request is a 502 and a stream ends with an in-band error."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from fal_openai_proxy.fal.errors import FalResponseTooLarge
from fal_openai_proxy.fal.openrouter import RawSSEDecoder
from fal_openai_proxy.fal.sse import SSEDecoder

from ..support.chat import MODEL, ask, sim
from ..support.servers import RunningProxy

LIMIT = 64 * 1024
BIG = "x" * (2 * LIMIT)  # an answer over the limit, as one event


@pytest.fixture(scope="module")
def small(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(max_upstream_body_bytes=LIMIT)


@pytest.fixture(scope="module")
def small_openrouter(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(max_upstream_body_bytes=LIMIT, model_routes="*=openai")


def stream_error(client: openai.OpenAI, text: str) -> openai.APIError:
    stream = client.chat.completions.create(model=MODEL, messages=ask(text), stream=True)
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    return info.value


@pytest.mark.parametrize("route", ["prompt", "openai"])
def test_a_stream_event_over_the_limit_ends_the_stream_with_an_error_event(
    small: RunningProxy,
    small_openrouter: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    route: str,
) -> None:
    running = small if route == "prompt" else small_openrouter
    error = stream_error(make_client(running), "hi " + sim({"text": BIG, "events": 1}))
    assert "too large" in error.message
    assert error.code == "upstream_too_large"


def test_a_stream_under_the_limit_is_untouched(
    small: RunningProxy, make_client: Callable[..., openai.OpenAI]
) -> None:
    text = "y" * (LIMIT // 4)
    stream = make_client(small).chat.completions.create(
        model=MODEL, messages=ask("hi " + sim({"text": text, "events": 3})), stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text


@pytest.mark.parametrize("route", ["prompt", "openai"])
def test_a_whole_answer_over_the_limit_is_a_502(
    small: RunningProxy,
    small_openrouter: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    route: str,
) -> None:
    running = small if route == "prompt" else small_openrouter
    with pytest.raises(openai.APIStatusError) as info:
        make_client(running).chat.completions.create(
            model=MODEL, messages=ask("hi " + sim({"text": BIG}))
        )
    assert info.value.status_code == 502
    assert info.value.code == "upstream_too_large"


# -- the decoders themselves --------------------------------------------------------------

Decoder = type[SSEDecoder] | type[RawSSEDecoder]


@pytest.mark.parametrize("make", [SSEDecoder, RawSSEDecoder])
def test_a_line_that_never_ends_is_cut_at_the_limit(make: Decoder) -> None:
    """An upstream stream with no newline grew one process to 2.6 GB."""
    decoder = make(10_000)
    piece = b"data: " + b"a" * 994  # 1,000 bytes, no line end
    for _ in range(10):
        assert decoder.feed(piece) == []  # 10,000 bytes: at the limit, kept
    with pytest.raises(FalResponseTooLarge):
        decoder.feed(piece)


@pytest.mark.parametrize("make", [SSEDecoder, RawSSEDecoder])
def test_an_event_of_many_lines_is_cut_at_the_limit(make: Decoder) -> None:
    decoder = make(10_000)
    line = b"data: " + b"a" * 994 + b"\n"
    for _ in range(10):
        assert decoder.feed(line) == []
    with pytest.raises(FalResponseTooLarge):
        decoder.feed(line)


@pytest.mark.parametrize("make", [SSEDecoder, RawSSEDecoder])
def test_a_long_line_in_many_pieces_is_joined_once(make: Decoder) -> None:
    decoder = make(10_000_000)
    for _ in range(5_000):
        assert decoder.feed(b"a" * 1000) == []
    assert decoder.feed(b"\n\n") == []  # a line that is no field: ignored, its memory freed
    assert len(decoder.feed(b"data: {}\n\n")) == 1
