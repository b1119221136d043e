"""Checks every proxy response a test sees against OpenAI's published schemas.

The httpx transports below wrap the clients that tests hand to the openai SDK and
langchain. Failures are recorded, not raised (the SDK would turn an exception inside its
transport into APIConnectionError), and an autouse fixture fails the test that saw them.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pydantic
from jsonschema import Draft202012Validator
from openai.types import Completion, CreateEmbeddingResponse, Video, VideoDeleteResponse
from openai.types.audio import (
    Transcription,
    TranscriptionStreamEvent,
    TranscriptionVerbose,
    Translation,
    TranslationVerbose,
)
from openai.types.responses import Response, ResponseStreamEvent

from .anthropic_schema import check_anthropic, is_anthropic

SCHEMAS = json.loads((Path(__file__).parent.parent / "data" / "openai-schemas.json").read_text())
_VALIDATORS = {
    name: Draft202012Validator(SCHEMAS[name])
    for name in (
        "CreateChatCompletionResponse",
        "CreateChatCompletionStreamResponse",
        "ListModelsResponse",
        "Model",
        "ErrorResponse",
        "ImagesResponse",
    )
}
# openai-schemas.json (an extract of openapi.yaml) has no audio schemas: transcriptions and
# translations are checked against the openai SDK's own models, as JSON schemas.
_VALIDATORS.update(
    {
        name: Draft202012Validator(model.model_json_schema())
        for name, model in (
            ("Transcription", Transcription),
            ("TranscriptionVerbose", TranscriptionVerbose),
            ("Translation", Translation),
            ("TranslationVerbose", TranslationVerbose),
        )
    }
)


# OpenAI's `CreateCompletionResponse` (openapi.yaml, the legacy completions API; not in
# tests/data/openai-schemas.json): `required` as OpenAI publishes it. A stream chunk is the
# same object with `finish_reason` null until the last chunk, as OpenAI sends it.
def _text_completion_schema(chunk: bool) -> dict[str, Any]:
    finish: dict[str, Any] = {"enum": ["stop", "length", "content_filter"]}
    if chunk:
        finish = {"anyOf": [finish, {"type": "null"}]}
    usage = {
        "type": "object",
        "properties": {k: {"type": "integer"} for k in ("completion_tokens", "prompt_tokens",
                                                        "total_tokens")},
        "required": ["completion_tokens", "prompt_tokens", "total_tokens"],
    }  # fmt: skip
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "text_completion"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "system_fingerprint": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["finish_reason", "index", "logprobs", "text"],
                    "properties": {
                        "finish_reason": finish,
                        "index": {"type": "integer"},
                        "logprobs": {"type": ["object", "null"]},
                        "text": {"type": "string"},
                    },
                },
            },
            "usage": {"anyOf": [usage, {"type": "null"}]} if chunk else usage,
        },
    }


_VALIDATORS["CreateCompletionResponse"] = Draft202012Validator(_text_completion_schema(False))
_VALIDATORS["CompletionChunk"] = Draft202012Validator(_text_completion_schema(True))
_IMAGE_PATHS = ("/v1/images/generations", "/v1/images/edits")
_AUDIO_TEXT_PATHS = {
    "/v1/audio/transcriptions": "Transcription",
    "/v1/audio/translations": "Translation",
}


# The Responses API and embeddings are not in tests/data/openai-schemas.json: their oracle
# is the openai SDK's own types (generated from the same OpenAPI document), validated
# strictly here, plus the fields OpenAI's `Response` schema requires that the SDK leaves
# optional.
_ADAPTERS: dict[str, pydantic.TypeAdapter[Any]] = {
    "Response": pydantic.TypeAdapter(Response),
    "ResponseStreamEvent": pydantic.TypeAdapter(ResponseStreamEvent),
    "CreateEmbeddingResponse": pydantic.TypeAdapter(CreateEmbeddingResponse),
    "Video": pydantic.TypeAdapter(Video),
    "VideoDeleteResponse": pydantic.TypeAdapter(VideoDeleteResponse),
    "Completion": pydantic.TypeAdapter(Completion),
    "TranscriptionStreamEvent": pydantic.TypeAdapter(TranscriptionStreamEvent),
}
# Video fields the SDK's types require although its model leaves them optional; and the sizes
# the proxy reports beyond Sora's four (what the fal app was asked: see docs/media.md).
_VIDEO_REQUIRED = ("id", "object", "model", "status", "progress", "created_at", "seconds", "size")
_VIDEO_SIZE = re.compile(r"^(\d{3,4}x\d{3,4}|auto)$")
# OpenAI's speech formats (translate/speech_audio.py says why each).
_SPEECH_TYPES = ("audio/mpeg", "audio/ogg", "audio/aac", "audio/flac", "audio/wav", "audio/pcm")
_RESPONSE_REQUIRED = (
    "id", "object", "created_at", "model", "output", "error", "incomplete_details",
    "instructions", "metadata", "parallel_tool_calls", "tool_choice", "tools", "temperature",
    "top_p",
)  # fmt: skip
TERMINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")


def schema_errors(name: str, body: Any) -> list[str]:
    if name in _ADAPTERS:
        try:
            _ADAPTERS[name].validate_python(body)
        except pydantic.ValidationError as exc:
            return [f"{name}: {e['loc']}: {e['msg']}" for e in exc.errors()[:5]]
        if name == "Response":
            return [f"Response: missing {k}" for k in _RESPONSE_REQUIRED if k not in body]
        return []
    return [f"{name}: {e.json_path}: {e.message}" for e in _VALIDATORS[name].iter_errors(body)]


@dataclass
class Recorder:
    """Everything the proxy sent, for the schema checks and the secret audit."""

    failures: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    checked: int = 0
    # Virtual keys' secrets, each shown once by POST /admin/keys: audited like the others.
    virtual_keys: list[str] = field(default_factory=list)

    def check(
        self, request: httpx.Request, response: httpx.Response, body: bytes, whole: bool
    ) -> None:
        secret = _created_key(request, response, body)
        if secret is not None:
            self.virtual_keys.append(secret)
            body = body.replace(secret.encode(), b"<shown once>")
        self.bodies.append(body)
        self.bodies.append(str(response.headers).encode())
        path = request.url.path
        if request.method == "OPTIONS":  # CORS preflights are not OpenAI responses
            return
        problems = check_response(
            path, response.status_code, response.headers, body, whole, request.headers
        )
        self.checked += 1
        self.failures += [
            f"{request.method} {path} -> {response.status_code}: {p}" for p in problems
        ]


def _created_key(request: httpx.Request, response: httpx.Response, body: bytes) -> str | None:
    if request.method != "POST" or response.status_code != 201:
        return None
    if not request.url.path.endswith("/admin/keys"):
        return None
    secret = json.loads(body).get("key")
    return secret if isinstance(secret, str) else None


def check_response(
    path: str,
    status: int,
    headers: httpx.Headers,
    body: bytes,
    whole: bool,
    request_headers: Any = None,
) -> list[str]:
    ctype = headers.get("content-type", "")
    if path.startswith("/admin/") or path == "/v1/key":
        return check_admin(path, status, ctype, body)
    if not path.startswith("/v1/"):
        return []
    if is_anthropic(path, request_headers or {}):
        return check_anthropic(path, status, ctype, body, whole)
    if status >= 400:
        if "application/json" not in ctype:
            return [f"error without JSON content type: {ctype}"]
        return schema_errors("ErrorResponse", json.loads(body))
    if path == "/v1/models":
        return schema_errors("ListModelsResponse", json.loads(body))
    if path.startswith("/v1/models/"):
        return schema_errors("Model", json.loads(body))
    if path in _IMAGE_PATHS:
        return check_images(json.loads(body))
    if path in _AUDIO_TEXT_PATHS:
        return check_transcript(_AUDIO_TEXT_PATHS[path], ctype, body)
    if path == "/v1/audio/speech":
        return [] if ctype in _SPEECH_TYPES else [f"speech with an unexpected type: {ctype}"]
    if path == "/v1/chat/completions":
        if ctype.startswith("text/event-stream"):
            return check_event_stream(body, whole)
        body_json = json.loads(body)
        problems = schema_errors("CreateChatCompletionResponse", body_json)
        if not isinstance(body_json.get("system_fingerprint"), str):
            problems.append("system_fingerprint is not a string")
        return problems
    if path == "/v1/completions":
        if ctype.startswith("text/event-stream"):
            return check_event_stream(body, whole, chunk_schema="CompletionChunk")
        body_json = json.loads(body)
        return schema_errors("CreateCompletionResponse", body_json) + schema_errors(
            "Completion", body_json
        )
    if path == "/v1/responses":
        if ctype.startswith("text/event-stream"):
            return check_responses_stream(body, whole)
        return schema_errors("Response", json.loads(body))
    if path.startswith("/v1/videos"):
        return check_videos(path, headers, body)
    if path == "/v1/embeddings":
        body_json = json.loads(body)
        for item in body_json.get("data") or []:
            # `encoding_format: "base64"` (the SDK's default) answers a base64 string of
            # little-endian float32s where the schema says an array of numbers.
            if isinstance(item, dict) and isinstance(item.get("embedding"), str):
                raw = base64.b64decode(item["embedding"])
                item["embedding"] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        problems = schema_errors("CreateEmbeddingResponse", body_json)
        if body_json.get("object") != "list":
            problems.append("embeddings object is not 'list'")
        return problems
    return []


def check_videos(path: str, headers: httpx.Headers, body: bytes) -> list[str]:
    """Video objects, list pages and deletions by the SDK's own types; content as bytes."""
    if path.endswith("/content"):
        ctype = headers.get("content-type", "")
        return [] if ctype.startswith(("video/", "image/")) else [f"content typed {ctype}"]
    parsed = json.loads(body)
    if parsed.get("object") == "video.deleted":
        return schema_errors("VideoDeleteResponse", parsed)
    if parsed.get("object") == "list":
        problems = [] if "has_more" in parsed and "last_id" in parsed else ["page without cursor"]
        return problems + [p for v in parsed.get("data", []) for p in check_video(v)]
    return check_video(parsed)


def check_video(video: Any) -> list[str]:
    size = video.get("size")
    problems = schema_errors("Video", {**video, "size": "720x1280"})
    problems += [f"Video: missing {k}" for k in _VIDEO_REQUIRED if k not in video]
    if not isinstance(size, str) or not _VIDEO_SIZE.match(size):
        problems.append(f"Video: size {size!r}")
    if video.get("status") in ("queued", "in_progress") and video.get("progress", 0) >= 100:
        problems.append("Video: progress 100 before completion")
    return problems


def check_admin(path: str, status: int, ctype: str, body: bytes) -> list[str]:
    """The admin API: OpenAI's error shape, and answers with exactly the documented fields
    (routes/admin_models.py, which /openapi.json publishes)."""
    if "application/json" not in ctype:
        return [f"{path}: not JSON: {ctype}"]
    data = json.loads(body)
    if status >= 400:
        return schema_errors("ErrorResponse", data)
    model = _admin_model(path, status)
    if model is None:
        return []
    return _exact(model, data, path)


def _admin_model(path: str, status: int) -> type[pydantic.BaseModel] | None:
    from fal_openai_proxy.routes import admin_models as m

    if path == "/v1/key":
        return m.OwnKey
    if path == "/admin/keys":
        return m.KeyCreated if status == 201 else m.KeyList
    if path.startswith("/admin/keys/"):
        return None  # a key object, or {id, deleted}: checked by the tests themselves
    return {"/admin/usage": m.UsageList, "/admin/requests": m.RequestList}.get(path)


def _exact(model: type[pydantic.BaseModel], data: Any, where: str) -> list[str]:
    try:
        model.model_validate(data)
    except pydantic.ValidationError as exc:
        return [f"{where}: {e['loc']}: {e['msg']}" for e in exc.errors()[:5]]
    problems = []
    for name, field_info in model.model_fields.items():
        annotation = field_info.annotation
        items = data.get(name) if isinstance(data, dict) else None
        inner = getattr(annotation, "__args__", (None,))[0]
        if (
            isinstance(items, list)
            and isinstance(inner, type)
            and issubclass(inner, pydantic.BaseModel)
        ):
            for item in items:
                problems += _exact(inner, item, f"{where}.{name}")
    expected = set(model.model_fields)
    optional = {n for n, f in model.model_fields.items() if not f.is_required()}
    extra = set(data) - expected
    missing = expected - optional - set(data)
    if extra or missing:
        problems.append(f"{where}: extra fields {sorted(extra)}, missing {sorted(missing)}")
    return problems


def check_images(body: Any) -> list[str]:
    problems = schema_errors("ImagesResponse", body)
    for item in body.get("data") or []:
        if ("url" in item) == ("b64_json" in item):
            problems.append(f"an image has neither or both of url and b64_json: {list(item)}")
    if not body.get("data"):
        problems.append("no images in data")
    return problems


def check_transcript(name: str, ctype: str, body: bytes) -> list[str]:
    """json and verbose_json by schema; text, srt and vtt by their framing; streams by
    event."""
    if ctype.startswith("text/event-stream"):
        return check_transcript_stream(body)
    if ctype.startswith("application/json"):
        parsed = json.loads(body)
        return schema_errors(name + "Verbose" if "segments" in parsed else name, parsed)
    text = body.decode()
    if ctype.startswith("text/vtt"):
        return [] if text.startswith("WEBVTT\n\n") else ["vtt without its WEBVTT header"]
    if ctype.startswith("text/plain"):
        return []
    return [f"transcript with an unexpected content type: {ctype}"]


def check_transcript_stream(body: bytes) -> list[str]:
    """`data: {json}` frames only (no `event:` line), each an event the openai SDK knows,
    deltas then one `transcript.text.done`, then `data: [DONE]`."""
    frames = [f for f in body.decode().split("\n\n") if f]
    if not frames or frames[-1] != "data: [DONE]":
        return ["a transcript stream must end with data: [DONE]"]
    problems: list[str] = []
    kinds = []
    for frame in frames[:-1]:
        if not frame.startswith("data: ") or "\n" in frame:
            problems.append(f"unexpected frame: {frame[:80]!r}")
            continue
        event = json.loads(frame[len("data: ") :])
        problems += schema_errors("TranscriptionStreamEvent", event)
        kinds.append(event.get("type"))
    if kinds[-1:] != ["transcript.text.done"] or kinds.count("transcript.text.done") != 1:
        problems.append(f"events out of order: {kinds}")
    return problems


def check_responses_stream(body: bytes, whole: bool) -> list[str]:
    """OpenAI's Responses framing: `event: <type>` then `data: {...}` in every event, a
    sequence_number rising by one from 0, `response.created` first, one response id, a
    terminal event last, no `[DONE]`; and every event of a type the SDK knows."""
    problems: list[str] = []
    events = []
    for frame in (f for f in body.decode().split("\n\n") if f):
        lines = frame.split("\n")
        if all(line.startswith(":") for line in lines):
            continue  # keep-alive comments
        if (
            len(lines) != 2
            or not lines[0].startswith("event: ")
            or not lines[1].startswith("data: ")
        ):
            problems.append(f"unexpected frame: {frame[:80]!r}")
            continue
        data = lines[1][len("data: ") :]
        if data == "[DONE]":
            problems.append("a Responses stream must not send [DONE]")
            continue
        event = json.loads(data)
        if event.get("type") != lines[0][len("event: ") :]:
            problems.append(f"event name {lines[0]!r} differs from type {event.get('type')!r}")
        problems += schema_errors("ResponseStreamEvent", event)
        events.append(event)
    if [e.get("sequence_number") for e in events] != list(range(len(events))):
        problems.append("sequence_number does not rise by one from 0")
    if events and events[0].get("type") != "response.created":
        problems.append(f"first event is {events[0].get('type')}, not response.created")
    ids = {e["response"].get("id") for e in events if isinstance(e.get("response"), dict)}
    if len(ids) > 1:
        problems.append(f"response ids differ: {ids}")
    for event in events:
        if event.get("type") in (*TERMINAL_EVENTS, "response.created"):
            problems += schema_errors("Response", event["response"])
    if whole and (not events or events[-1].get("type") not in TERMINAL_EVENTS):
        problems.append("stream does not end with a terminal event")
    return problems


def check_event_stream(
    body: bytes, whole: bool, chunk_schema: str = "CreateChatCompletionStreamResponse"
) -> list[str]:
    """Schema of every chunk, plus the framing rules clients rely on."""
    text = body.decode()
    problems: list[str] = []
    frames = [f for f in text.split("\n\n") if f]
    if any(line.startswith("event:") for line in text.splitlines()):
        problems.append("stream has event: lines")
    ids = set()
    finishes: dict[int, int] = {}
    datas = [f[len("data: ") :] for f in frames if f.startswith("data: ")]
    for data in datas:
        if data == "[DONE]":
            continue
        chunk = json.loads(data)
        if "error" in chunk:
            problems += schema_errors("ErrorResponse", chunk)
            continue
        problems += schema_errors(chunk_schema, chunk)
        if not isinstance(chunk.get("system_fingerprint"), str):
            problems.append("chunk system_fingerprint is not a string")
        ids.add(chunk["id"])
        for c in chunk["choices"]:
            if c.get("finish_reason"):
                finishes[c["index"]] = finishes.get(c["index"], 0) + 1
    if len(ids) > 1:
        problems.append(f"chunk ids differ: {ids}")
    if whole:
        if not datas or datas[-1] != "[DONE]":
            problems.append("stream does not end with data: [DONE]")
        errored = any(d.startswith('{"error"') for d in datas)
        if not errored and (not finishes or set(finishes.values()) != {1}):
            problems.append(f"finish_reasons per choice: {finishes}; expected one each")
    for frame in frames:
        if not frame.startswith(("data: ", ":")):
            problems.append(f"unexpected frame: {frame[:80]!r}")
    return problems


class _Tap:
    def __init__(
        self, recorder: Recorder, request: httpx.Request, response: httpx.Response
    ) -> None:
        self.recorder = recorder
        self.request = request
        self.response = response
        self.parts: list[bytes] = []
        self.whole = False
        self.done = False

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.recorder.check(self.request, self.response, b"".join(self.parts), self.whole)


class _SyncStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, tap: _Tap) -> None:
        self.inner, self.tap = inner, tap

    def __iter__(self) -> Iterator[bytes]:
        for part in self.inner:
            self.tap.parts.append(part)
            yield part
        self.tap.whole = True

    def close(self) -> None:
        self.inner.close()
        self.tap.finish()


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, tap: _Tap) -> None:
        self.inner, self.tap = inner, tap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.inner:
            self.tap.parts.append(part)
            yield part
        self.tap.whole = True

    async def aclose(self) -> None:
        await self.inner.aclose()
        self.tap.finish()


class ValidatingTransport(httpx.BaseTransport):
    def __init__(self, recorder: Recorder) -> None:
        self.inner = httpx.HTTPTransport()
        self.recorder = recorder

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        tap = _Tap(self.recorder, request, response)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_SyncStream(response.stream, tap),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self.inner.close()


class AsyncValidatingTransport(httpx.AsyncBaseTransport):
    def __init__(self, recorder: Recorder) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.recorder = recorder

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        tap = _Tap(self.recorder, request, response)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_AsyncStream(response.stream, tap),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
