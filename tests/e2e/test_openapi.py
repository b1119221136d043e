"""/openapi.json and /docs describe the API as the server really serves it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.routing import Route

from fal_openai_proxy.routes import ENDPOINTS
from fal_openai_proxy.routes.registry import JSON, Body, Endpoint

from ..support.media import make_png, make_wav
from ..support.servers import ADMIN_KEY, API_KEY, RunningProxy

FORM = str(Body.MULTIPART)
OPERATIONS: dict[tuple[str, str], Endpoint] = {(e.method, e.template): e for e in ENDPOINTS}

AUTH = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SCHEMES = {"bearer": AUTH, "admin": ADMIN}
# The real files a multipart example sends, for each binary field the schema requires.
FILES = {
    "image": ("cat.png", make_png(), "image/png"),
    "file": ("talk.wav", make_wav(0.5), "audio/wav"),
}


@pytest.fixture(scope="module")
def guarded(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(api_key=API_KEY, admin_key=ADMIN_KEY)


@pytest.fixture(scope="module")
def document(guarded: RunningProxy) -> dict[str, Any]:
    response = httpx.get(guarded.base_url + "/openapi.json", timeout=10)  # no key needed
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def served(running: RunningProxy) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in running.app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }


def test_every_route_is_in_the_document_and_nothing_else(
    guarded: RunningProxy, document: dict[str, Any]
) -> None:
    in_document = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    assert in_document == {(m, re.sub(r":\w+}", "}", p)) for m, p in served(guarded)}
    assert document["openapi"].startswith("3.")


def test_the_router_serves_the_registry_and_nothing_else(guarded: RunningProxy) -> None:
    assert served(guarded) == {(e.method, e.path) for e in ENDPOINTS}


def scheme_of(op: dict[str, Any]) -> str | None:
    """The key an operation takes (`bearer` or `admin`), if any."""
    return next((name for requirement in op.get("security", []) for name in requirement), None)


def example_path(path: str) -> str:
    endpoint = next(e for (_, p), e in OPERATIONS.items() if p == path)
    return re.sub(r"\{(\w+)\}", lambda m: endpoint.operation.path_example[m.group(1)], path)


def test_every_documented_operation_is_served(
    guarded: RunningProxy, document: dict[str, Any]
) -> None:
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            headers = SCHEMES[scheme] if (scheme := scheme_of(op)) else {}
            operation = OPERATIONS[(method.upper(), path)].operation
            body: dict[str, Any] = {}
            if "requestBody" in op:
                assert operation.example is not None, f"{method} {path}: give an example body"
                validate_body(document, op, operation.example)
                body = request_body(document, op, operation.example)
            url = guarded.base_url + example_path(path)
            response = httpx.request(method, url, headers=headers, timeout=30, **body)
            expected = str(operation.status)
            assert str(response.status_code) == expected, (method, path, response.text[:300])
            if response.is_redirect:
                assert response.headers["location"], (method, path)
                continue
            media = response.headers["content-type"].split(";")[0]
            assert media in op["responses"][expected]["content"], (method, path, media)
            # An empty requirement makes the key optional (REQUIRE_KEY_FOR_METRICS_AND_DOCS).
            if "security" in op and {} not in op["security"]:  # and the key is really needed
                # (and no other key will do)
                refused = httpx.request(method, url, timeout=30, **body)
                assert refused.status_code == 401, (method, path)
                other = ADMIN if headers is AUTH else AUTH
                wrong = httpx.request(method, url, headers=other, timeout=30, **body)
                assert wrong.status_code == 401, (method, path)


def body_type(op: dict[str, Any]) -> str:
    (media,) = op["requestBody"]["content"]
    assert media in (JSON, FORM), media
    return str(media)


def request_body(document: dict[str, Any], op: dict[str, Any], example: Any) -> dict[str, Any]:
    """httpx arguments sending `example`: JSON, or a form with a real file for each binary
    field the schema requires."""
    if body_type(op) == JSON:
        return {"json": example}
    schema = resolved_schema(document, op)
    binary = [name for name in schema["required"] if is_binary(schema["properties"][name])]
    assert binary, "a multipart body without a file"
    return {"data": example, "files": {name: FILES[name] for name in binary}}


def resolved_schema(document: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    ref = op["requestBody"]["content"][body_type(op)]["schema"]["$ref"]
    schema: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def is_binary(schema: dict[str, Any]) -> bool:
    if "anyOf" in schema:
        return any(is_binary(option) for option in schema["anyOf"])
    return schema.get("format") == "binary" or ("items" in schema and is_binary(schema["items"]))


def validate_body(document: dict[str, Any], op: dict[str, Any], body: Any) -> None:
    """A form's files are validated as strings (their `format: binary` is not asserted)."""
    schema = op["requestBody"]["content"][body_type(op)]["schema"]
    if body_type(op) == FORM:
        properties = resolved_schema(document, op)["properties"]
        body = {**{n: "<file>" for n, s in properties.items() if is_binary(s)}, **body}
    resolver_doc = {**schema, "components": document["components"]}
    jsonschema.validate(body, resolver_doc)


def test_undocumented_methods_are_refused(guarded: RunningProxy, document: dict[str, Any]) -> None:
    for path, ops in document["paths"].items():
        schemes = [scheme for op in ops.values() if (scheme := scheme_of(op))]
        headers = SCHEMES[schemes[0]] if schemes else AUTH  # the path's own key
        for method in {"get", "post", "put", "delete"} - set(ops):
            response = httpx.request(method, guarded.base_url + example_path(path), headers=headers)
            assert response.status_code == 405, (method, path, response.status_code)


def test_schema_and_server_agree_on_a_bad_chat_body(
    guarded: RunningProxy, document: dict[str, Any]
) -> None:
    op = document["paths"]["/v1/chat/completions"]["post"]
    for bad in ({"model": "m", "messages": []}, {"messages": [{"role": "user"}]}):
        with pytest.raises(jsonschema.ValidationError):
            validate_body(document, op, bad)
        response = httpx.post(guarded.v1 + "/chat/completions", json=bad, headers=AUTH)
        assert response.status_code == 400


# Bodies that break a documented limit: the schema refuses each, and so does the server
# (naming the field).
BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/responses", {"model": "m"}, "input"),
    ("/v1/responses", {"model": "m", "input": "hi", "store": True}, "store"),
    (
        "/v1/responses",
        {"model": "m", "input": "hi", "previous_response_id": "resp_1"},
        "previous_response_id",
    ),
    ("/v1/embeddings", {"model": "m", "input": []}, "input"),
    ("/v1/embeddings", {"model": "m", "input": ["a", ""]}, "input[1]"),
    ("/v1/embeddings", {"model": "m", "input": "a", "encoding_format": "int8"}, "encoding_format"),
    ("/v1/embeddings", {"model": "m", "input": "a", "dimensions": 0}, "dimensions"),
    ("/v1/images/generations", {"prompt": "p", "n": 11}, "n"),
    ("/v1/images/generations", {"prompt": "p", "response_format": "png"}, "response_format"),
    ("/v1/images/edits", {"prompt": "p", "n": 11}, "n"),
    ("/v1/images/edits", {"prompt": "p", "strength": 2}, "strength"),
    ("/v1/images/edits", {"prompt": "p", "response_format": "png"}, "response_format"),
    ("/v1/audio/transcriptions", {"model": "whisper-1", "temperature": 1.5}, "temperature"),
    (
        "/v1/audio/transcriptions",
        {"model": "whisper-1", "response_format": "mp3"},
        "response_format",
    ),
    ("/v1/audio/translations", {"model": "whisper-1", "response_format": "xml"}, "response_format"),
    ("/v1/audio/speech", {"model": "tts-1", "input": "hi", "voice": "alloy", "speed": 5}, "speed"),
]


@pytest.mark.parametrize(("path", "bad", "param"), BAD_BODIES)
def test_schema_and_server_agree_on_bad_bodies(
    guarded: RunningProxy, document: dict[str, Any], path: str, bad: dict[str, Any], param: str
) -> None:
    op = document["paths"][path]["post"]
    with pytest.raises(jsonschema.ValidationError):
        validate_body(document, op, bad)
    body = request_body(document, op, bad)
    response = httpx.post(guarded.base_url + path, headers=AUTH, timeout=30, **body)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["param"] == param


def test_multipart_endpoints_say_so(guarded: RunningProxy, document: dict[str, Any]) -> None:
    for (method, path), endpoint in OPERATIONS.items():
        operation = endpoint.operation
        op = document["paths"][path][method.lower()]
        assert ("requestBody" in op) == (operation.request is not None)
        if endpoint.body is Body.MULTIPART:  # and a JSON body is refused
            response = httpx.post(guarded.base_url + path, json=operation.example, headers=AUTH)
            assert response.status_code == 415  # the Content-Type guard, before the route
            assert response.json()["error"]["code"] == "unsupported_media_type"


def test_an_operation_describes_its_answer() -> None:
    for key, endpoint in OPERATIONS.items():
        status = endpoint.operation.status
        if status >= 400:
            assert status in endpoint.operation.responses, key


def test_docs_page_is_self_contained(guarded: RunningProxy, document: dict[str, Any]) -> None:
    response = httpx.get(guarded.base_url + "/docs", timeout=10)  # no key needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for path in document["paths"]:
        assert f"<code>{path}</code>" in page, path
    assert "ChatCompletionRequest" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "loads from elsewhere"
    assert "<script" not in page
