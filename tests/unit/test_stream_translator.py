"""translate/stream.py + translate/response.py: fal's cumulative events -> OpenAI chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fal_openai_proxy.fal.errors import FalEventError, FalIncompleteStream
from fal_openai_proxy.translate.response import ChunkEncoder, cut_at_stop, map_usage
from fal_openai_proxy.translate.stream import StreamTranslator

MODEL = "openai/gpt-4.1"
USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return dict(pairs)


def parse(raw: bytes) -> list[Any]:
    """Frames as JSON objects; "[DONE]" for the sentinel. Fails on any malformed frame."""
    if not raw:
        return []
    assert raw.endswith(b"\n\n")
    out: list[Any] = []
    for frame in raw[:-2].split(b"\n\n"):
        assert frame.startswith(b"data: "), frame
        payload = frame[len(b"data: ") :]
        if payload == b"[DONE]":
            out.append("[DONE]")
        else:
            out.append(json.loads(payload, object_pairs_hook=no_duplicate_keys))
    return out


def deltas(frames: list[Any], key: str = "content") -> list[str]:
    return [
        f["choices"][0]["delta"][key]
        for f in frames
        if isinstance(f, dict) and f["choices"] and key in f["choices"][0]["delta"]
    ]


def make(
    stops: list[str] | None = None, *, include_usage: bool = False, show_reasoning: bool = True
) -> StreamTranslator:
    encoder = ChunkEncoder(MODEL, include_usage=include_usage)
    return StreamTranslator(encoder, stops=stops or [], show_reasoning=show_reasoning)


def run(translator: StreamTranslator, events: list[dict[str, Any]]) -> list[Any]:
    raw = b"".join(translator.feed(e) for e in events) + translator.finish()
    return parse(raw)


def outputs(*texts: str) -> list[dict[str, Any]]:
    """fal's events: `partial: true` until the last."""
    last = len(texts) - 1
    return [{"output": t, "partial": i < last, "error": None} for i, t in enumerate(texts)]


def test_cumulative_output_becomes_deltas() -> None:
    t = make()
    assert deltas(parse(t.feed({"output": "Hel"}))) == ["Hel"]
    assert deltas(parse(t.feed({"output": "Hello"}))) == ["lo"]
    assert t.feed({"output": "Hello"}) == b""
    assert deltas(parse(t.feed({"output": "Hello world"}))) == [" world"]
    assert t.first_content_sent


def test_event_without_output_adds_nothing() -> None:
    t = make()
    assert t.feed({"partial": True, "error": None}) == b""
    assert not t.first_content_sent


def test_non_extending_output_is_sent_whole() -> None:
    t = make()
    t.feed({"output": "Hello"})
    assert deltas(parse(t.feed({"output": "Goodbye"}))) == ["Goodbye"]
    assert deltas(parse(t.feed({"output": "Goodbye!"}))) == ["!"]


def test_reasoning_deltas_as_reasoning_content() -> None:
    t = make()
    first = parse(t.feed({"reasoning": "Think"}))
    second = parse(t.feed({"reasoning": "Thinking", "output": "A"}))
    assert [f["choices"][0]["delta"] for f in first] == [{"reasoning_content": "Think"}]
    assert [f["choices"][0]["delta"] for f in second] == [
        {"reasoning_content": "ing"},
        {"content": "A"},
    ]


def test_hidden_reasoning_sends_only_content() -> None:
    t = make(show_reasoning=False)
    frames = run(t, [{"reasoning": "secret"}, {"reasoning": "secret plan", "output": "ok"}])
    assert deltas(frames, "reasoning_content") == []
    assert deltas(frames) == ["ok"]
    assert "secret" not in json.dumps(frames)


def test_content_is_json_escaped() -> None:
    text = 'quote " backslash \\ newline \n emoji 😀 </script>'
    assert deltas(parse(make().feed({"output": text}))) == [text]


def test_single_stop_sequence() -> None:
    t = make(["END"])
    frames = run(t, outputs("abcEN", "abcEND more", "abcEND more and more"))
    assert "".join(deltas(frames)) == "abc"
    assert t.stopped


def test_feeds_after_a_stop_add_nothing() -> None:
    t = make(["END"])
    t.feed({"output": "xEND"})
    assert t.stopped
    assert t.feed({"output": "xEND and then"}) == b""


def test_earliest_of_several_stop_sequences_wins() -> None:
    t = make(["XYZ", "\n\n"])
    frames = run(t, outputs("line1\n\nmoreXYZ"))
    assert "".join(deltas(frames)) == "line1"


def test_stop_straddling_two_events_never_leaks() -> None:
    t = make(["STOP"])
    first = deltas(parse(t.feed({"output": "Hello ST"})))
    assert "".join(first) == "Hello"  # " ST" held back: it may start STOP
    rest = deltas(parse(t.feed({"output": "Hello STOP there"})) + parse(t.finish()))
    assert "".join(first + rest) == "Hello "
    assert all("S" not in d for d in first + rest)


def test_stop_at_the_very_start_sends_no_content() -> None:
    t = make(["<|end|>"])
    frames = run(t, outputs("<|end|>rest"))
    assert deltas(frames) == []
    assert t.stopped
    assert not t.first_content_sent
    assert frames[-1] == "[DONE]"
    assert frames[-2]["choices"][0]["finish_reason"] == "stop"


def test_stop_not_found_flushes_held_back_tail_on_finish() -> None:
    t = make(["STOP"])
    during = deltas(parse(t.feed({"output": "Hello wor"})))
    assert "".join(during) == "Hello "
    tail = deltas(parse(t.finish()))
    assert tail == ["wor"]
    assert not t.stopped


def test_non_extending_output_with_stops_is_sent_whole_and_cut() -> None:
    t = make(["!"])
    t.feed({"output": "Hello"})
    frames = parse(t.feed({"output": "Bye!now"}))
    assert "".join(deltas(frames)) == "Bye"
    assert t.stopped


def test_finish_without_include_usage() -> None:
    t = make()
    t.feed({"output": "hi", "usage": USAGE})
    frames = parse(t.finish())
    assert frames[-1] == "[DONE]"
    (finish,) = frames[:-1]
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert "usage" not in finish


def test_finish_with_include_usage_sends_usage_chunk() -> None:
    t = make(include_usage=True)
    frames = run(t, [{"output": "hi"}, {"output": "hi!", "usage": USAGE}])
    assert frames[-1] == "[DONE]"
    usage_chunk = frames[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == USAGE
    for chunk in frames[:-2]:
        assert chunk["usage"] is None
    assert frames[-3]["choices"][0]["finish_reason"] == "stop"


def test_include_usage_without_usage_sends_null() -> None:
    frames = run(make(include_usage=True), outputs("hi"))
    assert frames[-2]["choices"] == []
    assert frames[-2]["usage"] is None


def test_usage_is_remembered_from_any_event() -> None:
    t = make()
    t.feed({"output": "a", "usage": {"input_tokens": 4, "output_tokens": 1}})
    t.feed({"output": "ab"})
    assert t.usage == {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}


def test_every_frame_shares_id_model_and_created() -> None:
    t = make(["zz"], include_usage=True)
    raw = t.encoder.role() + t.feed({"reasoning": "r", "output": "ab"})
    raw += t.feed({"reasoning": "rs", "output": "abc", "usage": USAGE}) + t.finish()
    frames = [f for f in parse(raw) if f != "[DONE]"]
    assert len(frames) >= 5
    assert {f["id"] for f in frames} == {t.encoder.completion_id}
    assert t.encoder.completion_id.startswith("chatcmpl-")
    assert {f["model"] for f in frames} == {MODEL}
    assert {f["created"] for f in frames} == {t.encoder.created}
    assert {f["object"] for f in frames} == {"chat.completion.chunk"}
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finishes = [f["choices"][0]["finish_reason"] for f in frames if f["choices"]]
    assert finishes.count("stop") == 1
    assert finishes[-1] == "stop"


def test_two_encoders_have_different_ids() -> None:
    assert ChunkEncoder(MODEL).completion_id != ChunkEncoder(MODEL).completion_id


@pytest.mark.parametrize("error", ["boom", {"message": "boom"}])
def test_error_in_event_raises(error: Any) -> None:
    t = make()
    t.feed({"output": "partial"})
    with pytest.raises(FalEventError, match="boom"):
        t.feed({"output": "partial more", "error": error})


@pytest.mark.parametrize("error", [None, "", {}])
def test_empty_error_does_not_raise(error: Any) -> None:
    assert deltas(parse(make().feed({"output": "fine", "error": error}))) == ["fine"]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 16, "cost": 0.01},
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 16},
        ),
        (
            {"prompt_tokens": 10, "completion_tokens": 5},
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        ),
        (
            {"input_tokens": 7, "output_tokens": 3},
            {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        ),
        (
            {"completion_tokens": 4},
            {"prompt_tokens": 0, "completion_tokens": 4, "total_tokens": 4},
        ),
        (
            {"prompt_tokens": 2.0, "completion_tokens": 1.0},
            {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
        ),
    ],
)
def test_map_usage(usage: dict[str, Any], expected: dict[str, int]) -> None:
    mapped = map_usage(usage)
    assert mapped == expected
    assert mapped is not None
    assert all(type(v) is int for v in mapped.values())


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "12 tokens",
        [1, 2],
        {},
        {"cost": 1},
        {"prompt_tokens": "10", "completion_tokens": "2"},
        {"prompt_tokens": True, "completion_tokens": False},
    ],
)
def test_map_usage_garbage_is_none(usage: Any) -> None:
    assert map_usage(usage) is None


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [
        ("abcSTOPdef", ["STOP"], ("abc", True)),
        ("a.b!c", ["!", "."], ("a", True)),
        ("STOPx", ["STOP"], ("", True)),
        ("no stop here", ["STOP"], ("no stop here", False)),
        ("anything", [], ("anything", False)),
    ],
)
def test_cut_at_stop(text: str, stops: list[str], expected: tuple[str, bool]) -> None:
    assert cut_at_stop(text, stops) == expected


def test_a_stream_that_ends_while_partial_is_an_error() -> None:
    t = make()
    t.feed({"output": "Hel", "partial": True, "error": None})
    with pytest.raises(FalIncompleteStream):
        t.finish()


def test_a_stream_whose_last_event_is_final_finishes_with_stop() -> None:
    frames = run(make(), outputs("Hel", "Hello"))
    assert frames[-2]["choices"][0]["finish_reason"] == "stop"


def test_a_stream_without_partial_flags_finishes_with_stop() -> None:
    frames = run(make(), [{"output": "Hel"}, {"output": "Hello"}])
    assert frames[-2]["choices"][0]["finish_reason"] == "stop"
