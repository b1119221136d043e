"""POST /v1/chat/completions."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..fal.client import FalStream
from ..fal.errors import FalBrokenError, FalError, FalTimeout, to_proxy_error
from ..openai.errors import invalid_request
from ..openai.requests import ChatCompletionRequest, parse_chat_request
from ..openai.sse import ClientGone, EventStreamResponse, until_disconnect
from ..state import ProxyState, proxy_state
from ..translate.request import FalCall, build_fal_call
from ..translate.response import (
    DONE,
    KEEPALIVE,
    ChunkEncoder,
    completion_body,
    cut_at_stop,
    error_frame,
    map_usage,
    new_completion_id,
)
from ..translate.stream import StreamErrorEvent, StreamTranslator

log = logging.getLogger(__name__)
CLIENT_CLOSED = 499  # nginx's status for a client that went away; logged, never sent
# Sent to the streams still open when the drain timeout expires.
_FAREWELL = (
    error_frame(
        {
            "error": {
                "message": "The server is shutting down; retry the request.",
                "type": "server_error",
                "param": None,
                "code": "server_shutting_down",
            }
        }
    )
    + DONE
)


async def create_chat_completion(request: Request) -> Response:
    state = proxy_state(request)
    settings = state.settings
    chat = parse_chat_request(await request.body())
    if len(chat.messages) > settings.max_messages:
        raise invalid_request(
            f"Too many messages: at most {settings.max_messages} are allowed.",
            param="messages",
            code="array_above_max_length",
        )
    call = build_fal_call(
        chat,
        chat_app=settings.fal_chat_app,
        vision_app=settings.fal_vision_app,
        prompt_limit=settings.prompt_limit,
        system_prompt_limit=settings.system_prompt_limit,
    )
    state.catalog.check(call.app, chat.model)
    info: dict[str, Any] = request.scope["state"]
    info.update(model=chat.model, model_label=state.catalog.metric_label(chat.model))
    info["stream"] = bool(chat.stream)
    if settings.log_prompts:
        log.info("prompt", extra={"request_id": info["request_id"], "fal_input": call.input})
    try:
        if chat.stream:
            return await _stream(state, request, chat, call)
        return await _complete(state, request, chat, call)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)


async def _complete(
    state: ProxyState, request: Request, chat: ChatCompletionRequest, call: FalCall
) -> Response:
    fal_key = request.scope["state"].get("fal_key")
    result = await until_disconnect(
        state.fal.run_queued(call.app, call.input, fal_key), request.receive
    )
    request.scope["state"]["fal_request_id"] = result.request_id
    output = result.output
    text = output.get("output")
    content, _ = cut_at_stop(text if isinstance(text, str) else "", chat.stop_sequences)
    reasoning = output.get("reasoning")
    body = completion_body(
        completion_id=new_completion_id(),
        model=chat.model,
        content=content,
        reasoning=reasoning if isinstance(reasoning, str) and not chat.reasoning_hidden else None,
        usage=map_usage(output.get("usage")),
    )
    if state.settings.log_prompts:
        log.info(
            "completion",
            extra={"request_id": request.scope["state"]["request_id"], "output": content},
        )
    return Response(orjson.dumps(body), media_type="application/json")


async def _stream(
    state: ProxyState, request: Request, chat: ChatCompletionRequest, call: FalCall
) -> Response:
    fal_key = request.scope["state"].get("fal_key")
    stream = await until_disconnect(
        state.fal.open_stream(call.app, call.input, fal_key), request.receive
    )
    request.scope["state"]["fal_request_id"] = stream.request_id
    translator = StreamTranslator(
        ChunkEncoder(chat.model, include_usage=chat.include_usage),
        stops=chat.stop_sequences,
        show_reasoning=not chat.reasoning_hidden,
    )
    return EventStreamResponse(_frames(state, stream, translator), state.open_streams, _FAREWELL)


async def _frames(
    state: ProxyState, stream: FalStream, translator: StreamTranslator
) -> AsyncIterator[bytes]:
    """The client's frames: role chunk, deltas, finish, usage, [DONE]; errors in-band."""
    metrics = state.metrics
    metrics.streams_in_flight.inc()
    started = time.perf_counter()
    try:
        yield translator.encoder.role()
        async for event in stream.events():
            if event is None:
                yield KEEPALIVE
                continue
            had_content = translator.first_content_sent
            frames = translator.feed(event)
            if frames:
                if not had_content and translator.first_content_sent:
                    metrics.ttft.observe(time.perf_counter() - started)
                yield frames
            if translator.stopped:
                break  # closing the fal connection below stops the generation
        yield translator.finish()
    except (FalError, FalTimeout, FalBrokenError, StreamErrorEvent) as exc:
        yield _error_frames(exc, state)
    finally:
        stream.close()
        metrics.streams_in_flight.dec()


def _error_frames(exc: Exception, state: ProxyState) -> bytes:
    if isinstance(exc, StreamErrorEvent):
        body = {
            "error": {
                "message": f"fal reported an error: {exc}",
                "type": "upstream_error",
                "param": None,
                "code": "upstream_error",
            }
        }
        kind = "stream_error"
    else:
        body = to_proxy_error(exc, pass_through=state.settings.pass_through).body()
        kind = type(exc).__name__
    state.metrics.upstream_errors.labels(kind).inc()
    log.warning("fal stream failed after it began: %s", kind)
    return error_frame(body) + DONE
