"""The pure parts of the Messages API: request translation, the answer, the stream's block
order, thinking signatures, token estimates and model pages."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest

from fal_openai_proxy.anthropic.errors import AnthropicError, wants_anthropic_errors
from fal_openai_proxy.anthropic.messages import parse_count_tokens_body, parse_messages_body
from fal_openai_proxy.fal.errors import FalBrokenError, UpstreamStreamError
from fal_openai_proxy.translate.anthropic_models import model_page
from fal_openai_proxy.translate.anthropic_reasoning import (
    ENVELOPE,
    blocks_from_details,
    seal,
    thinking_detail,
    unseal,
)
from fal_openai_proxy.translate.anthropic_request import chat_body
from fal_openai_proxy.translate.anthropic_response import (
    from_completion,
    stop_reason,
    tool_input,
    usage,
)
from fal_openai_proxy.translate.anthropic_stream import (
    ChatStreamToMessages,
    MessageEvents,
    PromptStreamToMessages,
)
from fal_openai_proxy.translate.anthropic_tokens import PDF_PAGE_TOKENS, count_request

from ..support.anthropic_schema import check_message_stream, parse_events


def request(**fields: Any) -> bytes:
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    return orjson.dumps({**body, **fields})


def events_of(frames: bytes) -> list[tuple[str, dict[str, Any]]]:
    assert check_message_stream(frames, whole=True) == []
    return parse_events(frames)[0]


# -- requests --------------------------------------------------------------------------------


def test_a_full_request_becomes_the_chat_request_it_means() -> None:
    body = chat_body(parse_messages_body(request(
        system=[{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "b"}],
        messages=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "also"},
                {"type": "tool_result", "tool_use_id": "t1", "content": "done"}]},
        ],
        tools=[{"name": "f", "input_schema": {"type": "object"}, "cache_control": {}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        stop_sequences=["END"], temperature=0.5, top_p=0.9, top_k=3,
        metadata={"user_id": "u"}, thinking={"type": "enabled", "budget_tokens": 1024},
        stream=True, max_tokens=4000,
    )))  # fmt: skip
    assert body["messages"] == [
        {"role": "system",
         "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "calling",
         "tool_calls": [{"id": "t1", "type": "function",
                         "function": {"name": "f", "arguments": '{"x":1}'}}],
         "reasoning_details": [
             {"type": "reasoning.text", "text": "hmm", "index": 0, "signature": "sig"},
             {"type": "reasoning.encrypted", "data": "opaque", "index": 1}]},
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
        {"role": "user", "content": "also"},
    ]  # fmt: skip
    assert body["tools"] == [{"type": "function", "function": {"name": "f",
                              "parameters": {"type": "object"}}}]  # fmt: skip
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert (body["stop"], body["temperature"], body["top_p"], body["top_k"]) == (
        ["END"],
        0.5,
        0.9,
        3,
    )
    assert body["user"] == "u" and body["reasoning"] == {"max_tokens": 1024}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "cache_control" not in json.dumps(body)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]},
         "code_execution"),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
        ({"tool_choice": {"type": "tool", "name": "g"}}, "tool_choice.name"),
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"temperature": 1.5}, "temperature"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "less than max_tokens"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
            "type": "file", "file_id": "f"}}]}]}, "Files API"),
        ({"messages": [{"role": "assistant", "content": [{"type": "tool_result",
            "tool_use_id": "t"}]}]}, "user turn"),
    ],
)  # fmt: skip
def test_bad_requests_name_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(AnthropicError) as caught:
        chat_body(parse_messages_body(request(**fields)))
    assert caught.value.status == 400 and message in caught.value.message
    assert caught.value.body()["error"]["type"] == "invalid_request_error"


def test_a_body_that_is_not_an_object() -> None:
    with pytest.raises(AnthropicError, match="not valid JSON"):
        parse_messages_body(b"[1, 2]")


def test_thinking_variants() -> None:
    adaptive = chat_body(parse_messages_body(request(thinking={"type": "adaptive"})))
    disabled = chat_body(parse_messages_body(request(thinking={"type": "disabled"})))
    assert adaptive["reasoning"] == {"enabled": True} and "reasoning" not in disabled


# -- thinking signatures ---------------------------------------------------------------------


def test_an_anthropic_signature_passes_verbatim_others_travel_sealed() -> None:
    anthropic_detail = {"format": "anthropic-claude-v1", "id": None}
    assert seal("abc", anthropic_detail) == "abc" and unseal("abc") == ("abc", {})
    google = {"format": "google-gemini-v1", "id": "rs_1"}
    sealed = seal("gsig", google)
    assert sealed.startswith(ENVELOPE)
    assert unseal(sealed) == ("gsig", {"format": "google-gemini-v1", "id": "rs_1"})
    assert thinking_detail("t", sealed, 0) == {"type": "reasoning.text", "text": "t", "index": 0,
        "format": "google-gemini-v1", "id": "rs_1", "signature": "gsig"}  # fmt: skip
    assert unseal(ENVELOPE + "not base64!") == (ENVELOPE + "not base64!", {})
    assert thinking_detail("t", "", 2) == {"type": "reasoning.text", "text": "t", "index": 2}


def test_details_become_blocks() -> None:
    blocks = blocks_from_details([
        {"type": "reasoning.summary", "summary": "short"},
        {"type": "reasoning.text", "text": "long", "signature": "s"},
        {"type": "reasoning.encrypted", "data": "d"},
        {"type": "reasoning.server_tool_call"}, "junk",
    ])  # fmt: skip
    assert blocks == [
        {"type": "thinking", "thinking": "short", "signature": ""},
        {"type": "thinking", "thinking": "long", "signature": "s"},
        {"type": "redacted_thinking", "data": "d"},
    ]


# -- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "choice", "stops", "called", "expected"),
    [
        ("stop", {}, [], False, ("end_turn", None)),
        ("length", {}, [], False, ("max_tokens", None)),
        ("tool_calls", {}, [], True, ("tool_use", None)),
        ("stop", {}, [], True, ("tool_use", None)),
        ("content_filter", {}, [], False, ("refusal", None)),
        ("stop", {"stop_reason": "B"}, ["A", "B"], False, ("stop_sequence", "B")),
        ("stop", {"native_finish_reason": "stop_sequence"}, ["A"], False, ("stop_sequence", "A")),
        ("stop", {"native_finish_reason": "stop_sequence"}, ["A", "B"], False,
         ("stop_sequence", None)),
    ],
)  # fmt: skip
def test_stop_reasons(
    finish: str, choice: dict[str, Any], stops: list[str], called: bool, expected: Any
) -> None:
    assert stop_reason(finish, choice, stops, called) == expected


def test_usage_keeps_cached_tokens_apart() -> None:
    assert usage({"prompt_tokens": 100, "completion_tokens": 5,
                  "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 10}}) == {
        "input_tokens": 30, "output_tokens": 5, "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 10}  # fmt: skip
    assert usage(None) == {"input_tokens": 0, "output_tokens": 0}


def test_tool_arguments_become_an_object() -> None:
    assert tool_input('{"a": 1}') == {"a": 1} and tool_input("") == {}
    assert tool_input("[1]") == {"arguments": [1]} and tool_input("{bad") == {"arguments": "{bad"}
    assert tool_input({"a": 2}) == {"a": 2}


def test_a_completion_becomes_a_message() -> None:
    message = from_completion({"choices": [{"finish_reason": "tool_calls", "message": {
        "content": "Let me look.", "reasoning": "plan",
        "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"q": "x"}'}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4}}, "m", [])  # fmt: skip
    assert message["content"] == [
        {"type": "thinking", "thinking": "plan", "signature": ""},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"q": "x"}},
    ]
    assert message["stop_reason"] == "tool_use" and message["usage"]["output_tokens"] == 4


# -- the stream's blocks -----------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    return orjson.dumps(
        {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    )


def call(index: int, arguments: str, name: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if name:
        part["id"], part["function"]["name"] = f"c{index}", name
    return {"tool_calls": [part]}


def test_interleaved_calls_become_one_block_each_in_order() -> None:
    stream = ChatStreamToMessages("m", [])
    frames = stream.head()
    for data in (
        chunk({"content": "Looking"}),
        chunk(call(0, "", "f")),
        chunk(call(1, '{"b":', "g")),
        chunk(call(0, '{"a": ')),
        chunk(call(1, " 2}")),
        chunk({"content": " done"}),  # waits: call 0 is not whole yet
        chunk(call(0, "1}")),
        chunk({}, "tool_calls"),
        orjson.dumps({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 7}}),
        b"[DONE]",
    ):
        frames += stream.feed(data)
    assert stream.over
    events = events_of(frames)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use", "tool_use", "text"]
    assert [b.get("name") for b in starts[1:3]] == ["f", "g"]
    deltas = [(d["index"], d["delta"]) for n, d in events if n == "content_block_delta"]
    assert [d["partial_json"] for i, d in deltas if i == 1] == ['{"a": ', "1}"]
    assert [d["partial_json"] for i, d in deltas if i == 2] == ['{"b":', " 2}"]
    assert [d["text"] for i, d in deltas if i == 3] == [" done"]
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {"input_tokens": 9, "output_tokens": 7}


def test_a_whole_call_closes_when_the_next_begins() -> None:
    events = MessageEvents("m")
    frames = events.start() + events.tool(0, "c0", "f") + events.tool_args(0, '{"a": 1}')
    frames += events.tool(1, "c1", "g")  # call 0 is whole: it closes, call 1 opens at once
    assert frames.count(b"event: content_block_stop") == 1
    assert frames.count(b"event: content_block_start") == 2
    frames += events.tool_args(0, "  ")  # whitespace after a whole call: nothing to send
    frames += events.tool_args(1, "{}") + events.finish(("tool_use", None), {"output_tokens": 1})
    assert len(events_of(frames)) == 9


def test_thinking_with_signature_then_redacted_then_text() -> None:
    stream = ChatStreamToMessages("google/x", [])
    detail = {"type": "reasoning.text", "format": "google-gemini-v1", "id": "rs", "index": 0}
    frames = stream.head()
    for data in (
        chunk({"reasoning": "a", "reasoning_details": [{**detail, "text": "a"}]}),
        chunk({"reasoning": "b", "reasoning_details": [{**detail, "text": "b"}]}),
        chunk({"reasoning_details": [{**detail, "text": "", "signature": "S"}]}),
        chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "D", "index": 1}]}),
        chunk({"content": "answer"}, "stop"),
    ):
        frames += stream.feed(data)
    frames += stream.end()
    events = events_of(frames)
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    assert [d["type"] for d in deltas] == ["thinking_delta", "thinking_delta", "signature_delta",
                                           "text_delta"]  # fmt: skip
    assert unseal(deltas[2]["signature"]) == ("S", {"format": "google-gemini-v1", "id": "rs"})
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert starts[1] == {"type": "redacted_thinking", "data": "D"}


def test_upstream_failures_are_raised() -> None:
    stream = ChatStreamToMessages("m", [])
    stream.feed(chunk({"content": "x"}))
    with pytest.raises(FalBrokenError):
        stream.end()  # no finish reason: the answer was cut short
    with pytest.raises(UpstreamStreamError):
        stream.feed(orjson.dumps({"error": {"code": 502, "message": "boom"}, "choices": []}))
    with pytest.raises(UpstreamStreamError):
        stream.feed(chunk({}, "error"))


def test_prompt_route_events_and_stop_sequences() -> None:
    stream = PromptStreamToMessages("m", ["STOP"])
    frames = stream.head()
    frames += stream.feed({"reasoning": "think", "output": "Hello ST"})
    frames += stream.feed({"reasoning": "think", "output": "Hello STOP more"})
    assert stream.stopped
    frames += stream.end()
    events = events_of(frames)
    text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    assert text == "Hello "
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}


# -- token estimates, models, error shape ----------------------------------------------------


def count_tokens(**fields: Any) -> int:
    body = parse_count_tokens_body(orjson.dumps({"model": "m", **fields}))
    return count_request(body, lambda text: len(text.split()))


def test_token_estimates_grow_with_every_kind_of_input() -> None:
    base = count_tokens(messages=[{"role": "user", "content": "one two"}])
    pdf = base64.b64encode(b"/Type /Page x /Type /Pages y /Type/Page z").decode()
    richer = count_tokens(
        system="be kind", tools=[{"name": "f", "input_schema": {"type": "object"}}],
        messages=[{"role": "user", "content": "one two"},
                  {"role": "assistant", "content": [
                      {"type": "thinking", "thinking": "deep thought", "signature": "s"},
                      {"type": "redacted_thinking", "data": "x"},
                      {"type": "tool_use", "id": "t", "name": "f", "input": {"a": "b c"}}]},
                  {"role": "user", "content": [
                      {"type": "tool_result", "tool_use_id": "t", "content": [
                          {"type": "text", "text": "result words"}]},
                      {"type": "document", "source": {"type": "base64",
                       "media_type": "application/pdf", "data": pdf}},
                      {"type": "document", "title": "T", "source": {"type": "text",
                       "media_type": "text/plain", "data": "plain"}}]}],
    )  # fmt: skip
    assert richer > base + 2 * PDF_PAGE_TOKENS  # two pages, not three ("/Pages" is no page)
    assert richer < base + 3 * PDF_PAGE_TOKENS


def test_model_pages() -> None:
    models = [{"id": f"m{i}", "created": 0} for i in range(5)]
    first = model_page(models, limit=2)
    assert [m["id"] for m in first["data"]] == ["m0", "m1"] and first["has_more"]
    after = model_page(models, limit=2, after_id="m3")
    assert [m["id"] for m in after["data"]] == ["m4"] and not after["has_more"]
    before = model_page(models, limit=2, before_id="m3")
    assert [m["id"] for m in before["data"]] == ["m1", "m2"] and before["has_more"]
    assert first["data"][0]["created_at"] == "1970-01-01T00:00:00Z"


def test_who_gets_anthropic_errors() -> None:
    assert wants_anthropic_errors({"path": "/v1/messages", "headers": []})
    assert wants_anthropic_errors({"path": "/v1/models", "headers": [(b"anthropic-version", b"1")]})
    assert not wants_anthropic_errors({"path": "/v1/chat/completions", "headers": []})
