"""Pure parts of the OpenAI route: the route table, the request body, the raw SSE decoder and
the chunk repairs."""

from __future__ import annotations

import json

import pytest

from fal_openai_proxy.base.settings import parse_model_routes
from fal_openai_proxy.fal.errors import FalBrokenError, UpstreamProviderError, UpstreamStreamError
from fal_openai_proxy.fal.openrouter import RawSSEDecoder, SSEEvent, route_error
from fal_openai_proxy.openai.chat import parse_chat_body
from fal_openai_proxy.openai.tools import needs_openrouter
from fal_openai_proxy.services.router import ModelRouter
from fal_openai_proxy.translate.openrouter import ChatChunkRepair, upstream_chat_body
from fal_openai_proxy.translate.openrouter_responses import ResponsesStreamRepair


def test_model_router_first_match_wins_and_defaults_to_auto() -> None:
    table = ModelRouter(parse_model_routes("openai/*=openai, openai/gpt-4*=prompt, x=PROMPT"))
    assert table.route_for("openai/gpt-4.1") == "openai"
    assert table.route_for("x") == "prompt"
    assert table.route_for("google/gemini-2.5-flash") == "auto"
    assert ModelRouter([], {"m": "openai"}).route_for("m") == "openai"


@pytest.mark.parametrize("raw", ["openai/*", "a=b", "=openai", "a=openai,b"])
def test_bad_model_routes_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="MODEL_ROUTES"):
        parse_model_routes(raw)


def chat(**fields: object) -> bytes:
    return json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    ).encode()


def test_a_plain_chat_does_not_need_the_openai_route() -> None:
    assert not needs_openrouter(parse_chat_body(chat(temperature=0.5, tools=[], n=1)))
    assert needs_openrouter(parse_chat_body(chat(logprobs=True)))
    audio = [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]
    assert needs_openrouter(
        parse_chat_body(json.dumps({"model": "m", "messages": [{"role": "user",
                                                                "content": audio}]}).encode())
    )  # fmt: skip


def test_reasoning_forms_become_one_openrouter_object() -> None:
    assert upstream_chat_body({"reasoning": True})["reasoning"] == {"enabled": True}
    assert upstream_chat_body({"reasoning_effort": "low"}) == {"reasoning": {"effort": "low"}}
    both = upstream_chat_body({"reasoning": {"exclude": True}, "reasoning_effort": "high"})
    assert both == {"reasoning": {"exclude": True, "effort": "high"}}
    assert "reasoning" not in upstream_chat_body({"reasoning": False, "tools": []})


def test_raw_decoder_keeps_event_names_and_skips_comments() -> None:
    decoder = RawSSEDecoder()
    events = decoder.feed(b": OPENROUTER PROCESSING\r\n\r\nevent: a\r\ndata: {}\r\n\r\ndata: [DO")
    assert events == [SSEEvent("a", b"{}")]
    assert decoder.feed(b"NE]\n\n") == [SSEEvent("", b"[DONE]")]


def test_openrouter_and_fal_error_bodies() -> None:
    body = b'{"error": {"code": 429, "message": "slow down", "metadata": {"error_type": "rl"}}}'
    error = route_error(429, {"retry-after": "3"}, body, 0)
    assert isinstance(error, UpstreamProviderError)
    assert (error.message, error.error_type, error.retry_after) == ("slow down", "rl", 3.0)
    fal = route_error(401, {}, b'{"detail": "No user found"}', 0)
    assert not isinstance(fal, UpstreamProviderError) and "No user found" in str(fal)


def test_chunk_repair_keeps_one_id_and_drops_unasked_usage() -> None:
    repair = ChatChunkRepair("m", include_usage=False)
    first = repair.feed(b'{"id": "gen-1", "choices": [{"delta": {"reasoning": "r"}}]}')
    assert b'"reasoning_content":"r"' in first and b'"finish_reason":null' in first
    assert b'"id":"gen-1"' in repair.feed(
        b'{"id": "gen-2", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}'
    )
    assert repair.feed(b'{"choices": [], "usage": {"prompt_tokens": 1}}') == b""
    assert repair.feed(b"[DONE]") == b"data: [DONE]\n\n" and repair.over


def test_chunk_repair_raises_upstream_errors() -> None:
    repair = ChatChunkRepair("m", include_usage=True)
    with pytest.raises(UpstreamStreamError, match="down"):
        repair.feed(b'{"error": {"code": 502, "message": "down"}, "choices": []}')
    with pytest.raises(UpstreamStreamError):
        repair.feed(b'{"choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}')
    with pytest.raises(FalBrokenError):
        ChatChunkRepair("m", include_usage=False).end()


def test_responses_repair_renumbers_and_fails_in_framing() -> None:
    repair = ResponsesStreamRepair("m")
    assert repair.feed(b'{"type": "response.debug"}') == b""
    created = repair.feed(b'{"type": "response.created", "response": {"id": "r1"}}')
    assert created.startswith(b"event: response.created\ndata: ")
    failed = repair.failed("boom", "server_error").decode()
    event = json.loads(failed.split("data: ", 1)[1])
    assert (event["type"], event["sequence_number"]) == ("response.failed", 1)
    assert event["response"]["id"] == "r1" and event["response"]["error"]["message"] == "boom"
