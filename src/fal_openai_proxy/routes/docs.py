"""GET /openapi.json, GET /docs and GET /: the API as the server really serves it.

The document is built from the endpoint registry (`routes/registry.py`): every endpoint is in
it with the operation its family registered, so no route can be served undocumented.
"""

from __future__ import annotations

import html
import re
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .. import __version__
from ..serve.console_auth import COOKIE
from ..serve.state import proxy_state
from .registry import JSON, Auth, Body, Endpoint, Operation, Protocol

_CODE = re.compile(r"`([^`]+)`")


def build_openapi(endpoints: list[Endpoint]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA, "FalError": _FAL_ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        entry = _operation(endpoint, schemas)
        paths.setdefault(endpoint.template, {})[endpoint.method.lower()] = entry
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
                "console": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": COOKIE,
                    "description": "A console session (`POST /console/session`), with its "
                    "CSRF token in `X-CSRF-Token` on every call (docs/console.md).",
                },
            },
        },
    }


def _operation(endpoint: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    operation = endpoint.operation
    responses: dict[str, Any] = {}
    answer: dict[str, Any] = {}
    if operation.response is not None:  # the shape of a success, even if `example` fails
        answer = {"schema": _schema(operation.response, schemas)}
        success_status = operation.status if operation.status < 300 else 200
        content = {t: answer for t in operation.media_types}
        responses[str(success_status)] = {"description": "OK", "content": content}
    if operation.status == 200:
        success = {"description": "OK", "content": {t: answer for t in operation.media_types}}
        responses["200"] = success
    elif 300 <= operation.status < 400:
        responses[str(operation.status)] = {"description": "Redirect."}
    shape = "FalError" if endpoint.protocol is Protocol.FAL else "Error"
    for status, text in operation.responses.items():  # errors
        error = {"schema": {"$ref": f"#/components/schemas/{shape}"}}
        responses[str(status)] = {"description": text, "content": {JSON: error}}
    entry: dict[str, Any] = {"summary": operation.summary, "responses": responses}
    if endpoint.auth is Auth.CLIENT:
        entry["security"] = [{"bearer": []}]
    elif endpoint.auth is Auth.ADMIN:
        entry["security"] = [{"admin": []}, {"console": []}]
    elif endpoint.auth is Auth.INFO:  # a key only with REQUIRE_KEY_FOR_METRICS_AND_DOCS
        entry["security"] = [{}, {"bearer": []}]
    if endpoint.parameters:
        entry["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in endpoint.parameters
        ]
    if operation.request is not None:
        body: dict[str, Any] = {"schema": _schema(operation.request, schemas)}
        if operation.example is not None:
            body["example"] = operation.example
        media_type = str(endpoint.body) if endpoint.body in (Body.JSON, Body.MULTIPART) else JSON
        entry["requestBody"] = {"required": True, "content": {media_type: body}}
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


# fal's error shape (docs/fal-protocol.md §13.3): `detail` as fal's platform sends it,
# `message` for fal-js's `ApiError.message`.
_FAL_ERROR_SCHEMA = {
    "type": "object",
    "required": ["detail", "message"],
    "properties": {"detail": {"type": "string"}, "message": {"type": "string"}},
}


def _document(request: Request) -> dict[str, Any]:
    state = proxy_state(request)
    if state.openapi is None:
        state.openapi = build_openapi(state.endpoints.endpoints)
    return state.openapi


async def openapi_json(request: Request) -> Response:
    return Response(orjson.dumps(_document(request)), media_type=JSON)


async def root(request: Request) -> Response:
    return RedirectResponse("/docs", status_code=307)


def _text(value: str) -> str:
    """Escaped, with Markdown's `code` spans as <code>."""
    return _CODE.sub(r"<code>\1</code>", html.escape(value))


async def docs_page(request: Request) -> Response:
    """Rendered here, with no script or style from elsewhere (the page works offline)."""
    doc = _document(request)
    rows, bodies = [], []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            statuses = ", ".join(op["responses"])
            requirements = op.get("security", [])
            scheme = next((name for req in requirements for name in req), "")
            auth = {"bearer": "Bearer (API_KEY)", "admin": "Bearer (ADMIN_KEY) or console"}.get(
                scheme, "none"
            )
            if {} in requirements and scheme:
                auth += ", if required"
            content: dict[str, Any] = op.get("requestBody", {}).get("content", {})
            media_type, first = next(iter(content.items()), ("", dict[str, Any]()))
            body: dict[str, Any] = first.get("schema", {})
            name = body.get("$ref", "").rsplit("/", 1)[-1]
            link = f"<a href=#{name}>{name}</a>" if name else ""
            link += " (multipart)" if media_type == str(Body.MULTIPART) else ""
            if "example" in first:
                example = orjson.dumps(first["example"]).decode()
                link += f"<br><code>{html.escape(example)}</code>"
            rows.append(
                f"<tr><td><b>{method.upper()}</b></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{_text(op['summary'])}</td><td>{auth}</td>"
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
<table><tr><th>method</th><th>path</th><th>what</th><th>auth</th><th>body (example)</th>
<th>statuses</th></tr>
{rows}
</table>
<h2>Schemas</h2>
{schemas}
</body></html>
"""


ROUTES = [
    Endpoint("GET", "/openapi.json", openapi_json, Operation("This document."),
             auth=Auth.INFO),
    Endpoint("GET", "/docs", docs_page,
             Operation("This document as a page.", media_types=("text/html",)),
             auth=Auth.INFO),
    Endpoint("GET", "/", root,
             Operation("Redirects to `/docs`.", status=307, responses={}), auth=Auth.PUBLIC),
]  # fmt: skip
