"""openai/requests.py: validation as OpenAI does it (400, with `param` and `code`)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fal_openai_proxy.openai.chat import ChatCompletionRequest, parse_chat_request
from fal_openai_proxy.openai.errors import ProxyError

HI = [{"role": "user", "content": "hi"}]


def body(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m/x", "messages": HI, **fields})


def parse(raw: bytes) -> ChatCompletionRequest:
    return parse_chat_request(raw)


def refused(raw: bytes) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        parse_chat_request(raw)
    error = info.value
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}
    return error


def user_parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


@pytest.mark.parametrize("raw", [b"{nope", b"", b"[1, 2]", b'"text"', b"null", b"42"])
def test_unparsable_or_non_object_body(raw: bytes) -> None:
    error = refused(raw)
    assert error.code == "invalid_json"
    assert error.param is None


@pytest.mark.parametrize(
    ("raw", "param", "code"),
    [
        (orjson.dumps({"messages": HI}), "model", "missing_required_parameter"),
        (orjson.dumps({"model": "m"}), "messages", "missing_required_parameter"),
        (body(messages=[]), "messages", "empty_array"),
        (body(messages="hi"), "messages", "invalid_type"),
        (body(model=5), "model", "invalid_type"),
        (body(model=""), "model", "invalid_value"),
        (body(messages=[{"content": "x"}]), "messages[0].role", "missing_required_parameter"),
        (body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role", "invalid_value"),
        (
            body(messages=[*HI, {"role": "user", "content": 123}]),
            "messages[1].content",
            "invalid_type",
        ),
        (
            body(messages=user_parts({"type": "text"})),
            "messages[0].content[0].text",
            "missing_required_parameter",
        ),
        (
            body(messages=user_parts({"type": "text", "text": 5})),
            "messages[0].content[0].text",
            "invalid_type",
        ),
        (body(temperature=3), "temperature", "invalid_value"),
        (body(temperature=-0.1), "temperature", "invalid_value"),
        (body(temperature="hot"), "temperature", "invalid_type"),
        (body(stop=["a", "b", "c", "d", "e"]), "stop", "array_above_max_length"),
        (body(stop=5), "stop", "invalid_type"),
        (body(n=0), "n", "invalid_value"),
        (body(max_tokens=0), "max_tokens", "invalid_value"),
        (body(top_logprobs=21), "top_logprobs", "invalid_value"),
        (body(response_format={"type": "sound"}), "response_format.type", "invalid_value"),
    ],
)
def test_invalid_fields_are_named(raw: bytes, param: str, code: str) -> None:
    error = refused(raw)
    assert (error.param, error.code) == (param, code)
    assert param in error.message


def test_unknown_content_part_type_names_the_type_field() -> None:
    # OpenAI: param "messages[0].content[1].type", code "invalid_value".
    raw = body(messages=user_parts({"type": "text", "text": "x"}, {"type": "video"}))
    error = refused(raw)
    assert (error.param, error.code) == ("messages[0].content[1].type", "invalid_value")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "s"}}},
            "response_format",
        ),
    ],
)
def test_unsupported_parameters(fields: dict[str, Any], param: str) -> None:
    error = refused(body(**fields))
    assert (error.param, error.code) == (param, "unsupported_parameter")
    assert error.message.startswith(f"Unsupported parameter: '{param}'")


def test_json_schema_message_matches_langchain_hint() -> None:
    fields = {"response_format": {"type": "json_schema", "json_schema": {"name": "s"}}}
    error = refused(body(**fields))
    assert "'response_format' of type 'json_schema' is not supported with this model" in (
        error.message
    )


@pytest.mark.parametrize("stream", [None, False])
def test_stream_options_without_stream(stream: bool | None) -> None:
    fields: dict[str, Any] = {"stream_options": {"include_usage": True}}
    if stream is not None:
        fields["stream"] = stream
    error = refused(body(**fields))
    assert (error.param, error.code) == ("stream_options", "invalid_value")


@pytest.mark.parametrize(
    ("part", "index"),
    [
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, 1),
        ({"type": "file", "file": {"file_id": "f1"}}, 1),
    ],
)
def test_audio_and_file_parts_refused(part: dict[str, Any], index: int) -> None:
    messages = [*HI, *user_parts({"type": "text", "text": "see"}, part)]
    error = refused(body(messages=messages))
    assert (error.param, error.code) == (f"messages[1].content[{index}]", "unsupported_parameter")
    assert part["type"] in error.message


@pytest.mark.parametrize(
    "fields",
    [
        {"n": 1},
        {"tools": []},
        {"logprobs": False},
        {"response_format": {"type": "text"}},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"stop": ["a", "b", "c", "d"]},
        {"temperature": 2, "top_p": 1},
        {"parallel_tool_calls": True, "made_up_field": {"x": 1}, "safety_identifier": "s"},
        {"messages": [{"role": "developer", "content": "d"}, *HI]},
        {"messages": [{"role": "user", "content": "x", "unknown": 1}]},
    ],
    ids=str,
)
def test_accepted(fields: dict[str, Any]) -> None:
    request = parse(body(**fields))
    assert request.model == "m/x"


def test_unknown_fields_are_accepted_and_dropped_unread() -> None:
    # Never converted to Python objects: a huge unknown field costs nothing but its parse.
    request = parse(body(made_up_field=[1, {"a": 2}], metadata={"k": "v"}))
    assert request.model_extra is None


@pytest.mark.parametrize(
    ("stop", "expected"),
    [(None, []), ("END", ["END"]), (["a", "", "b"], ["a", "b"]), ("", [])],
)
def test_stop_sequences(stop: Any, expected: list[str]) -> None:
    assert parse(body(stop=stop)).stop_sequences == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, None),
        ({"max_tokens": 10}, 10),
        ({"max_completion_tokens": 20}, 20),
        ({"max_tokens": 10, "max_completion_tokens": 20}, 20),
    ],
)
def test_output_limit(fields: dict[str, Any], expected: int | None) -> None:
    assert parse(body(**fields)).output_limit == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"stream": True}, False),
        ({"stream": True, "stream_options": {}}, False),
        ({"stream": True, "stream_options": {"include_usage": False}}, False),
        ({"stream": True, "stream_options": {"include_usage": True}}, True),
    ],
)
def test_include_usage(fields: dict[str, Any], expected: bool) -> None:
    assert parse(body(**fields)).include_usage is expected


@pytest.mark.parametrize(
    ("reasoning", "hidden"),
    [(None, False), (True, False), ({"effort": "low"}, False), ({"exclude": True}, True)],
)
def test_reasoning_hidden(reasoning: Any, hidden: bool) -> None:
    assert parse(body(reasoning=reasoning)).reasoning_hidden is hidden


def test_image_url_as_bare_string_is_accepted() -> None:
    messages = user_parts({"type": "image_url", "image_url": "https://x/a.png"})
    request = parse(body(messages=messages))
    content = request.messages[0].content
    assert isinstance(content, list)
    assert content[0].url == "https://x/a.png"  # type: ignore[union-attr]
