"""fal's OpenAI route as OpenRouter-through-fal answers it (docs/fal-protocol.md §9):
``POST {run}/openrouter/router/openai/v1/{chat/completions,responses,embeddings}``.

Deterministic: with tools and a user turn last, the model calls the first tool (or the one
``tool_choice`` names) with arguments built from its schema; after a tool result it answers
quoting it. Directives (``[[sim {...}]]`` in any message text) script failures: ``status``
(+ ``body``, ``headers``, ``ingress``, ``fail_times``, ``tag``) before the stream, in
OpenRouter's ``{"error": {"code", "message"}}`` shape unless ``body`` says otherwise;
``error_at`` (an error chunk, or ``response.failed``), ``drop_at``, ``hang``,
``latency_ms``, ``interval_ms``, ``events``, ``text``, ``usage``, ``no_cost``,
``billable_units``; and ``finish_error`` (a
200 whose choice ends with ``finish_reason: "error"``), ``no_done`` (no ``[DONE]``) and
``no_completed`` (a Responses stream that stops after its last item).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
import uuid
from typing import Any

import orjson

from .asgi import SSE_HEADERS, DisconnectWatch, SimulatedDrop, read_body
from .common import Call, check_auth, decode_body, parse_key, send_scripted_error
from .directives import Directives, build, scan, units_header
from .openai_chat import (
    ToolCall,
    media_note,
    plan_calls,
    reasoning_details,
    returned_reasoning_problem,
    tool_results_since_assistant,
)
from .schema_values import value_for
from .state import SimulatorState
from .text import pieces

PREFIX = "openrouter/router/openai/v1/"
PROVIDER = "Simulated"
_PROCESSING = b": OPENROUTER PROCESSING\n\n"
_DONE = b"data: [DONE]\n\n"


async def handle(call: Call, state: SimulatorState, endpoint: str) -> None:
    raw = await read_body(call.receive)
    body = decode_body(raw)
    parse_key(call)
    call.log(state, "openai", PREFIX + endpoint, body if isinstance(body, dict) else None)
    if call.method != "POST":
        await call.detail(405, "Method Not Allowed")
        return
    if not await check_auth(call, state):
        return
    if endpoint not in ("chat/completions", "responses", "embeddings"):
        await call.detail(404, f"Application 'openrouter/router/{PREFIX}{endpoint}' not found")
        return
    if not isinstance(body, dict):
        await _openrouter_error(call, 400, "Invalid JSON body")
        return
    directives = build(_directive_objects(body))
    if _scripted_failure(state, directives, body):
        if directives.body is None and not directives.ingress:
            status = directives.status if directives.status is not None else 503
            await _openrouter_error(call, status, "Simulated upstream error", directives)
        else:
            await send_scripted_error(call, directives)
        return
    model = body.get("model")
    if not isinstance(model, str) or not model:
        await _openrouter_error(call, 400, "No model provided")
        return
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and {"effort", "max_tokens"} <= reasoning.keys():
        # "One of the following (not both)" (docs/fal-protocol.md §9.3); the wording is ours.
        await _openrouter_error(
            call, 400, "Only one of reasoning.effort and reasoning.max_tokens may be given"
        )
        return
    watch = DisconnectWatch(call.receive)
    try:
        latency = (directives.latency_ms if directives.latency_ms is not None else 0) / 1000
        if directives.hang == "before_headers" or await watch.pause(latency):
            await watch.pause(math.inf)
            call.log_disconnect(state)
            return
        if endpoint == "embeddings":
            await _embeddings(call, body, model, directives)
        elif endpoint == "responses":
            await _responses(call, state, watch, body, model, directives)
        else:
            await _chat(call, state, watch, body, model, directives)
    finally:
        watch.stop()


# -- directives and failures -------------------------------------------------------------------


def _texts(body: dict[str, Any]) -> list[str]:
    """Every piece of text the client sent, where directives may hide."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key in ("content", "text", "input", "output", "instructions"):
                if key in value:
                    walk(value[key])

    walk(body.get("messages"))
    walk(body.get("input"))
    walk(body.get("instructions"))
    return found


def _directive_objects(body: dict[str, Any]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for text in _texts(body):
        objects.extend(scan(text)[1])
    return objects


def _clean(text: str) -> str:
    return scan(text)[0].strip()


def _scripted_failure(state: SimulatorState, d: Directives, body: dict[str, Any]) -> bool:
    if d.status is None and d.fail_times is None:
        return False
    if d.fail_times is None:
        return True
    tag = d.tag if d.tag is not None else _clean(" ".join(_texts(body)))[:200]
    return state.count_attempt(tag) <= d.fail_times


async def _openrouter_error(
    call: Call, status: int, message: str, d: Directives | None = None
) -> None:
    extra = [
        (k.lower().encode(), v.encode()) for k, v in ((d.headers if d else None) or {}).items()
    ]
    body = {"error": {"code": status, "message": message, "metadata": {"provider_name": PROVIDER}}}
    await call.json(status, body, extra)


# -- the simulated model -----------------------------------------------------------------------


def _chat_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool the simulated model calls, if any: `{name, parameters}`."""
    tools = [t["function"] for t in body.get("tools") or [] if isinstance(t, dict) and
             isinstance(t.get("function"), dict)]  # fmt: skip
    tools += [f for f in body.get("functions") or [] if isinstance(f, dict)]
    messages = body.get("messages") or []
    last = messages[-1].get("role") if messages and isinstance(messages[-1], dict) else ""
    role = "tool" if tool_results_since_assistant(messages) else last
    return _pick_tool(tools, body.get("tool_choice"), role)


def _pick_tool(tools: list[dict[str, Any]], choice: Any, last_role: Any) -> dict[str, Any] | None:
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        inner = choice.get("function")
        target: dict[str, Any] = inner if isinstance(inner, dict) else choice
        named = [t for t in tools if t.get("name") == target.get("name")]
        if named:
            return named[0]
    if last_role != "user" and choice != "required":
        return None
    return tools[0]


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _clean(" ".join(_texts({"messages": [message]})))
    return ""


def _chat_text(body: dict[str, Any], d: Directives) -> str:
    messages = body.get("messages") or []
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        return orjson.dumps(value_for(schema)).decode()
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return orjson.dumps({"answer": _last_user_text(messages)}).decode()
    if d.text is not None:
        return d.text
    results = tool_results_since_assistant(messages)
    if results:
        return "The tool returned: " + _clean(" ".join(_texts({"messages": results})))
    return "Simulated answer to: " + _last_user_text(messages) + media_note(messages)


def _reasoning(body: dict[str, Any], d: Directives) -> str | None:
    reasoning = body.get("reasoning")
    if not isinstance(reasoning, dict) or reasoning.get("exclude") is True:
        return None
    if reasoning.get("enabled") is False or reasoning.get("effort") == "none":
        return None
    return d.reasoning_text or "Simulated reasoning."


def _cut_at_stop(text: str, stop: Any) -> tuple[str, bool]:
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _words(text: str) -> int:
    return len(text.split())


def _usage(body: dict[str, Any], output: str) -> dict[str, Any]:
    prompt = sum(_words(t) for t in _texts(body)) or 1
    completion = _words(output)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": 0.00001 * (prompt + completion),
        "is_byok": False,
    }


def _accounting(body: dict[str, Any]) -> bool:
    """Whether the body asks for OpenRouter's usage accounting, `usage: {include: true}`."""
    usage = body.get("usage")
    return isinstance(usage, dict) and usage.get("include") is True


def _logprobs(text: str) -> dict[str, Any]:
    tokens = [{"token": w, "logprob": -0.25, "bytes": list(w.encode()), "top_logprobs": []}
              for w in text.split(" ")]  # fmt: skip
    return {"content": tokens, "refusal": None}


# -- chat completions --------------------------------------------------------------------------


async def _chat(
    call: Call,
    state: SimulatorState,
    watch: DisconnectWatch,
    body: dict[str, Any],
    model: str,
    d: Directives,
) -> None:
    problem = returned_reasoning_problem(body)
    if problem is not None:
        await _openrouter_error(call, 400, problem)
        return
    calls = plan_calls(body, d, _chat_tool(body), value_for)
    text, stopped = _cut_at_stop(_chat_text(body, d), body.get("stop"))
    reasoning = _reasoning(body, d)
    details = reasoning_details(model, reasoning, d) if reasoning else []
    given = body.get("n")
    n: int = given if isinstance(given, int) and given > 1 else 1
    finish = "tool_calls" if calls else "stop"
    # Anthropic's providers report the stop sequence natively (docs/fal-protocol.md §9.6).
    native = "stop_sequence" if stopped and not calls else finish
    usage = _usage(body, text + "".join(c.arguments for c in calls))
    if _accounting(body) and not d.no_cost:  # usage accounting (docs/fal-protocol.md §14.4)
        usage["cost_details"] = {"upstream_inference_cost": None}
    else:
        del usage["cost"], usage["is_byok"]
    head = {"id": f"gen-{int(time.time())}-{uuid.uuid4().hex[:20]}", "provider": PROVIDER,
            "model": model, "created": int(time.time())}  # fmt: skip
    if not body.get("stream"):
        choices = []
        for index in range(n):
            message: dict[str, Any] = {"role": "assistant", "content": None if calls else text,
                                       "refusal": None, "reasoning": reasoning}  # fmt: skip
            if details:
                message["reasoning_details"] = details
            if calls:
                message["tool_calls"] = [{"id": c.id, "type": "function", "index": i,
                    "function": {"name": c.name, "arguments": c.arguments}}
                    for i, c in enumerate(calls)]  # fmt: skip
            choice: dict[str, Any] = {"logprobs": _logprobs(text) if body.get("logprobs") else None,
                "finish_reason": finish, "native_finish_reason": native, "index": index,
                "message": message}  # fmt: skip
            if d.finish_error:
                choice["finish_reason"] = "error"
                choice["error"] = {"code": 502, "message": "Simulated provider failure",
                                   "metadata": {"error_type": "provider_unavailable"}}  # fmt: skip
            choices.append(choice)
        answer = {**head, "object": "chat.completion", "system_fingerprint": None,
                  "choices": choices}  # fmt: skip
        if d.usage is not False:
            answer["usage"] = usage
        await call.json(200, answer, units_header(d.billable_units))
        return
    chunks = _chat_chunks(head, n, text, details, calls, (finish, native), d, body)
    if d.usage is not False:
        chunks.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    frames = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
    error_at = None if d.error_at is None else min(max(d.error_at, 0), len(frames) - 1)
    if error_at is not None:
        error_chunk = {**head, "object": "chat.completion.chunk",
            "error": {"code": 502, "message": d.error_message or "Simulated provider error",
                      "metadata": {"error_type": d.error_type or "provider_unavailable"}},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error",
                         "native_finish_reason": "error"}]}  # fmt: skip
        frames = [*frames[:error_at], b"data: " + orjson.dumps(error_chunk) + b"\n\n"]
    if not d.no_done:
        frames.append(_DONE)
    await _send_stream(call, state, watch, frames, d)


def _chat_chunks(
    head: dict[str, Any],
    n: int,
    text: str,
    details: list[dict[str, Any]],
    calls: list[ToolCall],
    finish: tuple[str, str],
    d: Directives,
    body: dict[str, Any],
) -> list[dict[str, Any]]:
    count = d.events if d.events is not None else 4

    def chunk(index: int, delta: dict[str, Any], reason: str | None = None,
              native: str | None = None) -> dict[str, Any]:  # fmt: skip
        choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": reason,
                                  "native_finish_reason": native or reason}  # fmt: skip
        if body.get("logprobs") and delta.get("content"):
            choice["logprobs"] = _logprobs(delta["content"])
        return {**head, "object": "chat.completion.chunk", "choices": [choice]}

    chunks = []
    for index in range(n):
        chunks.append(chunk(index, {"role": "assistant", "content": ""}))
        for delta in _reasoning_deltas(details, count):
            chunks.append(chunk(index, delta))
        if calls:
            for delta in _call_deltas(calls, count, d.interleave):
                chunks.append(chunk(index, delta))
        else:
            for piece in _deltas(text, count):
                chunks.append(chunk(index, {"role": "assistant", "content": piece}))
        chunks.append(chunk(index, {"role": "assistant", "content": ""}, *finish))
    return chunks


def _reasoning_deltas(details: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """OpenRouter's streamed reasoning: `reasoning` pieces, each also as a `reasoning.text`
    detail fragment; the signature in a last fragment; an encrypted detail whole
    (docs/fal-protocol.md §9.6)."""
    deltas: list[dict[str, Any]] = []
    for detail in details:
        if detail["type"] != "reasoning.text":
            deltas.append({"role": "assistant", "content": "", "reasoning_details": [detail]})
            continue
        fixed = {k: v for k, v in detail.items() if k not in ("text", "signature")}
        for piece in _deltas(detail["text"], count):
            fragment = {**fixed, "text": piece}
            deltas.append({"role": "assistant", "content": "", "reasoning": piece,
                           "reasoning_details": [fragment]})  # fmt: skip
        last = {**fixed, "text": "", "signature": detail["signature"]}
        deltas.append({"role": "assistant", "content": "", "reasoning_details": [last]})
    return deltas


def _call_deltas(calls: list[ToolCall], count: int, interleave: bool) -> list[dict[str, Any]]:
    """Each call's first fragment (id, name), then its argument fragments: call after call,
    or with `interleave` every call opened first and their fragments taken in turn."""
    heads: list[dict[str, Any]] = [
        {"role": "assistant", "content": None, "tool_calls": [{"index": i, "id": c.id,
         "type": "function", "function": {"name": c.name, "arguments": ""}}]}
        for i, c in enumerate(calls)
    ]  # fmt: skip
    pieces: list[list[dict[str, Any]]] = [
        [{"role": "assistant", "tool_calls": [{"index": i, "function": {"arguments": p}}]}
         for p in _deltas(c.arguments, count)]
        for i, c in enumerate(calls)
    ]  # fmt: skip
    if not interleave:
        return [delta for i in range(len(calls)) for delta in (heads[i], *pieces[i])]
    mixed: list[dict[str, Any]] = list(heads)
    for round_ in range(max((len(p) for p in pieces), default=0)):
        mixed.extend(p[round_] for p in pieces if round_ < len(p))
    return mixed


def _deltas(text: str, count: int) -> list[str]:
    if not text:
        return []
    if " " not in text:  # JSON arguments: cut by characters
        size = max(1, -(-len(text) // max(count, 1)))
        return [text[i : i + size] for i in range(0, len(text), size)]
    prefixes = pieces(text, count)
    return [b[len(a) :] for a, b in zip(["", *prefixes], prefixes, strict=False)]


async def _send_stream(
    call: Call, state: SimulatorState, watch: DisconnectWatch, frames: list[bytes], d: Directives
) -> None:
    headers = [*SSE_HEADERS, *call.id_header, *units_header(d.billable_units)]
    await call.send({"type": "http.response.start", "status": 200, "headers": headers})
    state.open_streams += 1
    try:
        if d.hang is not None:
            await watch.pause(math.inf)
            call.log_disconnect(state)
            return
        await call.send({"type": "http.response.body", "body": _PROCESSING, "more_body": True})
        interval = (d.interval_ms or 0) / 1000
        for index, frame in enumerate(frames):
            if index == d.drop_at:
                raise SimulatedDrop
            if (index and await watch.pause(interval)) or watch.disconnected:
                call.log_disconnect(state)
                return
            await call.send({"type": "http.response.body", "body": frame, "more_body": True})
        watch.stop()
        await call.send({"type": "http.response.body", "body": b""})
    finally:
        state.open_streams -= 1


# -- Responses API -----------------------------------------------------------------------------


def _response_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") ==
             "function"]  # fmt: skip
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else {}
    role = (
        "user" if isinstance(items, str) else (last.get("role") if isinstance(last, dict) else "")
    )
    return _pick_tool(tools, body.get("tool_choice"), role)


def _response_text(body: dict[str, Any], d: Directives) -> str:
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return orjson.dumps(value_for(fmt.get("schema"))).decode()
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return orjson.dumps({"answer": _clean(" ".join(_texts(body)))}).decode()
    if d.text is not None:
        return d.text
    items = body.get("input")
    if isinstance(items, str):
        return "Simulated answer to: " + _clean(items)
    last = items[-1] if isinstance(items, list) and items else {}
    if isinstance(last, dict) and last.get("type") == "function_call_output":
        return "The tool returned: " + _clean(str(last.get("output", "")))
    for item in reversed(items or []):
        if isinstance(item, dict) and item.get("role") == "user":
            return "Simulated answer to: " + _clean(" ".join(_texts({"input": [item]})))
    return "Simulated answer."


async def _responses(
    call: Call,
    state: SimulatorState,
    watch: DisconnectWatch,
    body: dict[str, Any],
    model: str,
    d: Directives,
) -> None:
    tool = _response_tool(body)
    text = _response_text(body, d)
    response_id = f"gen-{uuid.uuid4().hex[:20]}"
    if tool:
        arguments = orjson.dumps(value_for(tool.get("parameters"))).decode()
        item: dict[str, Any] = {"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:20]}",
            "call_id": f"call_{uuid.uuid4().hex[:20]}", "name": tool["name"],
            "arguments": arguments, "status": "completed"}  # fmt: skip
        produced = arguments
    else:
        item = {"type": "message", "id": f"msg_{uuid.uuid4().hex[:20]}", "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip
        produced = text
    usage = _usage({"input": body.get("input")}, produced)
    base: dict[str, Any] = {"id": response_id, "object": "response", "created_at": int(time.time()),
            "model": model, "status": "in_progress", "output": [], "error": None,
            "incomplete_details": None, "tools": body.get("tools") or [],
            "tool_choice": body.get("tool_choice") or "auto", "parallel_tool_calls": True,
            "temperature": body.get("temperature"), "top_p": None,
            "instructions": body.get("instructions"), "metadata": {}}  # fmt: skip
    final = {**base, "status": "completed", "output": [item], "completed_at": int(time.time())}
    if d.usage is not False:
        final["usage"] = {"input_tokens": usage["prompt_tokens"],
                          "output_tokens": usage["completion_tokens"],
                          "total_tokens": usage["total_tokens"], "cost": usage["cost"]}  # fmt: skip
        if d.no_cost:
            del final["usage"]["cost"]
    if not body.get("stream"):
        await call.json(200, final, units_header(d.billable_units))
        return
    events = _response_events(base, final, item, d)
    error_at = None if d.error_at is None else min(max(d.error_at, 0), len(events) - 1)
    if error_at is not None:
        failed = {**base, "status": "failed", "error": {"code": "server_error",
                  "message": d.error_message or "Simulated provider error"}}  # fmt: skip
        events = [*events[:error_at], {"type": "response.failed", "response": failed}]
    frames = []
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
        # OpenRouter's docs show data-only frames ending with [DONE] (docs/fal-protocol.md §9.5).
        frames.append(b"data: " + orjson.dumps(event) + b"\n\n")
    frames.append(_DONE)
    await _send_stream(call, state, watch, frames, d)


def _response_events(
    base: dict[str, Any], final: dict[str, Any], item: dict[str, Any], d: Directives
) -> list[dict[str, Any]]:
    count = d.events if d.events is not None else 4
    ids = {"item_id": item["id"], "output_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": base},
        {"type": "response.in_progress", "response": base},
    ]
    if item["type"] == "function_call":
        events.append({"type": "response.output_item.added", "output_index": 0,
                       "item": {**item, "arguments": "", "status": "in_progress"}})  # fmt: skip
        for piece in _deltas(item["arguments"], count):
            events.append({"type": "response.function_call_arguments.delta", **ids,
                           "delta": piece})  # fmt: skip
        events.append({"type": "response.function_call_arguments.done", **ids,
                       "name": item["name"], "arguments": item["arguments"]})  # fmt: skip
    else:
        text = item["content"][0]["text"]
        part = {"type": "output_text", "text": "", "annotations": []}
        events.append({"type": "response.output_item.added", "output_index": 0,
                       "item": {**item, "status": "in_progress", "content": []}})  # fmt: skip
        events.append({"type": "response.content_part.added", **ids, "content_index": 0,
                       "part": part})  # fmt: skip
        for piece in _deltas(text, count):
            events.append({"type": "response.output_text.delta", **ids, "content_index": 0,
                           "delta": piece, "logprobs": []})  # fmt: skip
        events.append({"type": "response.output_text.done", **ids, "content_index": 0,
                       "text": text, "logprobs": []})  # fmt: skip
        events.append({"type": "response.content_part.done", **ids, "content_index": 0,
                       "part": {**part, "text": text}})  # fmt: skip
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    if not d.no_completed:
        events.append({"type": "response.completed", "response": final})
    return events


# -- embeddings --------------------------------------------------------------------------------


def vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-ish vector for a text (exact in float32)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [((digest[i % 32] - 128) / 128) for i in range(dimensions)]


async def _embeddings(call: Call, body: dict[str, Any], model: str, d: Directives) -> None:
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        await _openrouter_error(call, 400, "Input must be a string or an array of strings")
        return
    given = body.get("dimensions")
    dims: int = given if isinstance(given, int) and given > 0 else 8
    data = []
    for index, text in enumerate(inputs):
        values = vector(_clean(text), dims)
        embedding: Any = values
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dims}f", *values)).decode()
        data.append({"object": "embedding", "embedding": embedding, "index": index})
    tokens = sum(_words(t) for t in inputs)
    usage: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
    if not d.no_cost:
        usage["cost"] = 0.0000001 * tokens
    await call.json(200, {"id": f"gen-emb-{uuid.uuid4().hex[:16]}", "object": "list",
                          "data": data, "model": model, "usage": usage},
                    units_header(d.billable_units))  # fmt: skip
