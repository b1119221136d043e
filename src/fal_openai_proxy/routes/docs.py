"""GET /openapi.json and GET /docs: the API as the server really serves it.

The document is built from the application's route table (so every route is in it) and
the operations registered below (summary, request model, responses). A new endpoint adds one
`document(...)` call; a test fails while a route has none.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .. import __version__
from ..fal.media_apps import MEDIA_APPS
from ..openai.endpoints import EmbeddingsRequest, ResponsesRequest
from ..openai.media_requests import (
    ImageEditForm,
    ImageGenerationRequest,
    SpeechRequest,
    TranscriptionForm,
    TranslationForm,
)
from ..openai.requests import ChatCompletionRequest
from .admin_models import (
    KeyCreate,
    KeyCreated,
    KeyDeleted,
    KeyList,
    KeyObject,
    KeyUpdate,
    OwnKey,
    RequestList,
    UsageList,
)

JSON = "application/json"
FORM = "multipart/form-data"
_PARAM = re.compile(r"\{(\w+)(:\w+)?\}")
ERRORS = {
    400: "Invalid request (the field is named in `error.param`).",
    401: "Missing or wrong client key.",
    402: "The model provider behind fal's OpenAI route needs more credit.",
    403: "The model provider behind fal's OpenAI route refused the request (e.g. moderation).",
    404: "Unknown model.",
    413: "Body over MAX_BODY_BYTES.",
    429: "A per-client limit, or every fal key busy; see `Retry-After`.",
    502: "fal failed or could not be reached.",
    503: "fal unavailable, or the server is draining.",
    504: "fal or the proxy timed out.",
}


@dataclass(frozen=True)
class Operation:
    summary: str
    request: type[BaseModel] | None = None
    body_type: str = JSON  # or FORM: then `example` holds the text fields (files: binary ones)
    example: dict[str, Any] | None = None  # a request body the server accepts
    responses: dict[int, str] = field(default_factory=dict)
    media_types: tuple[str, ...] = (JSON,)  # of the answer to `example`
    path_example: dict[str, str] = field(default_factory=dict)  # path parameters, for tests
    status: int = 200  # the answer to `example`: 404 for responses that are never stored
    response: type[BaseModel] | None = None  # the JSON answer's shape
    security: str | None = None  # "bearer" (API_KEY or a virtual key) or "admin" (ADMIN_KEY)


# (method, path as in the route table) -> operation
OPERATIONS: dict[tuple[str, str], Operation] = {}


def document(method: str, path: str, summary: str, **details: Any) -> None:
    OPERATIONS[(method, path)] = Operation(summary, **details)


document(
    "POST", "/v1/chat/completions",
    "Chat completion, streaming (`\"stream\": true`, server-sent events) or not.",
    request=ChatCompletionRequest,
    example={"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "Hi"}]},
    responses=dict(ERRORS),
    media_types=(JSON, "text/event-stream"),
)  # fmt: skip
_OPENAI_ROUTE_ERRORS = {s: ERRORS[s] for s in (400, 401, 402, 403, 413, 429, 502, 503, 504)}
_MEDIA_ERRORS = {s: ERRORS[s] for s in (400, 401, 413, 429, 502, 503, 504)}
document(
    "POST", "/v1/responses",
    "The Responses API on fal's OpenAI route, streaming (server-sent events with `event:` "
    "lines) or not. Stateless: nothing is stored.",
    request=ResponsesRequest,
    example={"model": "openai/gpt-4.1", "input": "Hi"},
    responses=_OPENAI_ROUTE_ERRORS,
    media_types=(JSON, "text/event-stream"),
)  # fmt: skip
_NOT_STORED = {
    401: ERRORS[401],
    404: "`response_not_found`: responses are never stored (the Responses API is stateless).",
}
for _method, _summary in (
    ("GET", "Retrieve a response: always 404, as no response is stored."),
    ("DELETE", "Delete a response: always 404, as no response is stored."),
    ("POST", "`POST /v1/responses/{id}/cancel`: always 404, as no response is stored."),
):
    document(
        _method, "/v1/responses/{response_id:path}", _summary, responses=_NOT_STORED,
        status=404, path_example={"response_id": "resp_123"},
    )  # fmt: skip
document(
    "POST", "/v1/embeddings", "Embeddings on fal's OpenAI route.",
    request=EmbeddingsRequest,
    example={"model": "openai/text-embedding-3-small", "input": ["a", "b"]},
    responses=_OPENAI_ROUTE_ERRORS,
)  # fmt: skip
document(
    "POST", "/v1/images/generations",
    "Image generation on a fal image app (`model` defaults to FAL_IMAGE_APP).",
    request=ImageGenerationRequest,
    example={"model": "fal-ai/flux/dev", "prompt": "a lighthouse at dusk", "size": "1024x768"},
    responses=_MEDIA_ERRORS,
)  # fmt: skip
document(
    "POST", "/v1/images/edits",
    "Image edit on a fal edit app (`model` defaults to FAL_EDIT_APP); files go to fal inline "
    "up to INLINE_FILE_BYTES, else through fal's storage.",
    request=ImageEditForm, body_type=FORM,
    example={"model": "fal-ai/flux-pro/kontext", "prompt": "make it blue", "n": 1},
    responses=_MEDIA_ERRORS,
)  # fmt: skip
# srt and text are text/plain, vtt text/vtt, json and verbose_json JSON (services/audio.py).
_TRANSCRIPTS = (JSON, "text/plain", "text/vtt")
document(
    "POST", "/v1/audio/transcriptions", "Speech to text on fal's whisper or wizper.",
    request=TranscriptionForm, body_type=FORM,
    example={"model": "whisper-1", "language": "en", "response_format": "json"},
    responses=_MEDIA_ERRORS, media_types=_TRANSCRIPTS,
)  # fmt: skip
document(
    "POST", "/v1/audio/translations", "Speech to English text on fal's whisper or wizper.",
    request=TranslationForm, body_type=FORM,
    example={"model": "whisper-1"},
    responses=_MEDIA_ERRORS, media_types=_TRANSCRIPTS,
)  # fmt: skip
document(
    "POST", "/v1/audio/speech",
    "Text to speech; the audio bytes are streamed as they arrive from fal, in the one "
    "format the app produces.",
    request=SpeechRequest,
    example={"model": "tts-1", "input": "Hello from fal.", "voice": "alloy"},
    responses=_MEDIA_ERRORS,
    media_types=tuple(sorted({a.audio_content_type for a in MEDIA_APPS.values()} - {""})),
)  # fmt: skip
document(
    "GET", "/v1/models", "The model catalog, in OpenAI's list shape.", responses={401: ERRORS[401]}
)
document(
    "GET", "/v1/models/{model_id:path}", "One model; ids contain `/`.",
    responses={401: ERRORS[401], 404: ERRORS[404]},
    path_example={"model_id": "google/gemini-2.5-flash"},
)  # fmt: skip
document(
    "GET", "/v1/key",
    "The calling virtual key: its limits and spend (404 for any other key).",
    response=OwnKey, status=404,
    responses={401: ERRORS[401], 404: "Not a virtual key (`key_not_found`)."},
)  # fmt: skip
_ADMIN_ERRORS = {
    401: "Missing or wrong ADMIN_KEY.",
    403: "The admin API is off: ADMIN_KEY is not set, or DATABASE_URL is none.",
    503: "The accounts database is unreachable.",
}
_KEY_PATH = {"key_id": "0000000000000000"}
_UNKNOWN_KEY = {**_ADMIN_ERRORS, 404: "No key with this id (`key_not_found`)."}
_BAD_FIELD = {400: "A bad field, named in `error.param`."}
document(
    "POST", "/admin/keys",
    "Create a virtual key. The answer carries its secret, `key`, this one time only.",
    request=KeyCreate, example={"name": "alice", "max_budget": 5, "budget_period": "month"},
    response=KeyCreated, status=201, responses={**_ADMIN_ERRORS, **_BAD_FIELD},
    security="admin",
)  # fmt: skip
document(
    "GET", "/admin/keys", "Every virtual key (deleted ones excepted), newest first.",
    response=KeyList, responses=_ADMIN_ERRORS, security="admin",
)  # fmt: skip
document(
    "GET", "/admin/keys/{key_id}", "One virtual key.",
    response=KeyObject, responses=_UNKNOWN_KEY, security="admin",
    path_example=_KEY_PATH, status=404,
)  # fmt: skip
document(
    "PATCH", "/admin/keys/{key_id}",
    "Change a key: any field of its creation, and `disabled`. Other replicas apply it within "
    "a second.",
    request=KeyUpdate, example={"disabled": True}, response=KeyObject,
    responses={**_UNKNOWN_KEY, **_BAD_FIELD}, security="admin",
    path_example=_KEY_PATH, status=404,
)  # fmt: skip
document(
    "DELETE", "/admin/keys/{key_id}",
    "Delete a key: refused everywhere within a second; its usage stays in the reports.",
    response=KeyDeleted, responses=_UNKNOWN_KEY, security="admin",
    path_example=_KEY_PATH, status=404,
)  # fmt: skip
document(
    "GET", "/admin/usage",
    "Usage summed per key, model, day or endpoint over whole UTC days: `?start=&end=` "
    "(YYYY-MM-DD or unix times; the last 30 days by default), `group_by=key|model|day|endpoint` "
    "(default day).",
    response=UsageList, responses={**_ADMIN_ERRORS, **_BAD_FIELD}, security="admin",
)  # fmt: skip
document(
    "GET", "/admin/requests",
    "The request log, newest first: `?key_id=&model=&status=&since=` filter it, `limit` "
    "(1-1000, default 50) and `after` (the `last_id` of the previous page) page through it.",
    response=RequestList, responses={**_ADMIN_ERRORS, **_BAD_FIELD}, security="admin",
)  # fmt: skip
document("GET", "/healthz", "200 while the process is up.")
document("GET", "/readyz", "200 while serving; 503 once draining.", responses={503: "Draining."})
document("GET", "/metrics", "Prometheus metrics.", media_types=("text/plain",))
document("GET", "/openapi.json", "This document.")
document("GET", "/docs", "This document as a page.", media_types=("text/html",))


def openapi_path(path: str) -> str:
    """`/v1/models/{model_id:path}` -> `/v1/models/{model_id}`."""
    return _PARAM.sub(r"{\1}", path)


def build_openapi(routes: list[Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = OPERATIONS.get((method, route.path))
            entry = _operation(route.path, operation, schemas)
            paths.setdefault(openapi_path(route.path), {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "fal-openai-proxy", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "admin": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ADMIN_KEY (the admin API).",
                },
            },
        },
    }


def _operation(path: str, operation: Operation | None, schemas: dict[str, Any]) -> dict[str, Any]:
    if operation is None:  # a route nobody described: visible, and a test fails on it
        return {"summary": "Undocumented.", "responses": {"200": {"description": "OK"}}}
    responses: dict[str, Any] = {}
    answer: dict[str, Any] = {}
    if operation.response is not None:
        answer = {"schema": _schema(operation.response, schemas)}
    if operation.status in (200, 201) or operation.response is not None:
        status = operation.status if operation.status in (200, 201) else 200
        success = {"description": "OK", "content": {t: answer for t in operation.media_types}}
        responses[str(status)] = success
    for status, text in operation.responses.items():
        error = {"schema": {"$ref": "#/components/schemas/Error"}}
        responses[str(status)] = {"description": text, "content": {JSON: error}}
    entry: dict[str, Any] = {"summary": operation.summary, "responses": responses}
    if operation.security is not None:
        entry["security"] = [{operation.security: []}]
    elif path.startswith("/v1/"):  # GuardMiddleware: API_KEY when set (or a fal key)
        entry["security"] = [{"bearer": []}]
    if params := _PARAM.findall(path):
        entry["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name, _ in params
        ]
    if operation.request is not None:
        body: dict[str, Any] = {"schema": _schema(operation.request, schemas)}
        entry["requestBody"] = {"required": True, "content": {operation.body_type: body}}
    return entry


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    """`model` among the components; a reference to it."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def _document(request: Request) -> dict[str, Any]:
    state = request.app.state
    if getattr(state, "openapi", None) is None:
        state.openapi = build_openapi(request.app.routes)
    document: dict[str, Any] = state.openapi
    return document


async def openapi_json(request: Request) -> Response:
    return Response(orjson.dumps(_document(request)), media_type=JSON)


async def docs_page(request: Request) -> Response:
    """Rendered here, with no script or style from elsewhere (the page works offline)."""
    doc = _document(request)
    rows, bodies = [], []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            statuses = ", ".join(op["responses"])
            scheme = next(iter(op["security"][0]), None) if "security" in op else None
            auth = {"bearer": "Bearer (API_KEY)", "admin": "Bearer (ADMIN_KEY)"}.get(
                scheme or "", "none"
            )
            content: dict[str, Any] = op.get("requestBody", {}).get("content", {})
            first: dict[str, Any] = next(iter(content.values()), {})
            body: dict[str, Any] = first.get("schema", {})
            name = body.get("$ref", "").rsplit("/", 1)[-1]
            link = f"<a href=#{name}>{name}</a>" if name else ""
            link += " (multipart)" if FORM in content else ""
            rows.append(
                f"<tr><td><b>{method.upper()}</b></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td><td>{auth}</td>"
                f"<td>{link}</td><td>{statuses}</td></tr>"
            )
    for name, schema in doc["components"]["schemas"].items():
        text = html.escape(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode())
        bodies.append(f"<h3 id={name}>{name}</h3><pre>{text}</pre>")
    page = _PAGE.format(version=__version__, rows="\n".join(rows), schemas="\n".join(bodies))
    return HTMLResponse(page)


_PAGE = """<!doctype html>
<html><head><meta charset=utf-8><title>fal-openai-proxy API</title>
<style>body{{font:14px sans-serif;margin:2em;max-width:70em}}td,th{{border-bottom:1px solid #ddd;
padding:4px 8px;text-align:left;vertical-align:top}}table{{border-collapse:collapse}}
pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style></head>
<body><h1>fal-openai-proxy {version}</h1>
<p>The OpenAI-compatible API of this server. Machine-readable:
<a href=openapi.json>openapi.json</a>.</p>
<table><tr><th>method</th><th>path</th><th>what</th><th>auth</th><th>body</th>
<th>statuses</th></tr>
{rows}
</table>
<h2>Schemas</h2>
{schemas}
</body></html>
"""
