"""/openapi.json and /docs describe the API as the server really serves it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.routing import Route

from fal_openai_proxy.routes.docs import OPERATIONS, openapi_path

from ..support.servers import API_KEY, RunningProxy

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def guarded(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(api_key=API_KEY)


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
    assert in_document == {(m, openapi_path(p)) for m, p in served(guarded)}
    assert document["openapi"].startswith("3.")


def test_every_route_is_described_and_no_description_is_stale(guarded: RunningProxy) -> None:
    routes = served(guarded)
    assert routes - OPERATIONS.keys() == set(), "add a document(...) entry in routes/docs.py"
    assert OPERATIONS.keys() - routes == set(), "a documented operation has no route"


def example_path(path: str) -> str:
    operation = next(op for (_, p), op in OPERATIONS.items() if openapi_path(p) == path)
    return re.sub(r"\{(\w+)\}", lambda m: operation.path_example[m.group(1)], path)


def test_every_documented_operation_is_served(
    guarded: RunningProxy, document: dict[str, Any]
) -> None:
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            body = None
            headers = AUTH if "security" in op else {}
            operation = next(
                o for (m, p), o in OPERATIONS.items()
                if m == method.upper() and openapi_path(p) == path
            )  # fmt: skip
            if "requestBody" in op:
                body = operation.example
                assert body is not None, f"{method} {path}: give an example body"
                validate_body(document, op, body)
            response = httpx.request(
                method, guarded.base_url + example_path(path), json=body, headers=headers,
                timeout=30,
            )  # fmt: skip
            assert response.status_code == 200, (method, path, response.text[:300])
            media = response.headers["content-type"].split(";")[0]
            assert media in op["responses"]["200"]["content"], (method, path, media)
            if "security" in op:  # and the key is really needed
                refused = httpx.request(method, guarded.base_url + example_path(path), json=body)
                assert refused.status_code == 401, (method, path)


def validate_body(document: dict[str, Any], op: dict[str, Any], body: Any) -> None:
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    resolver_doc = {**schema, "components": document["components"]}
    jsonschema.validate(body, resolver_doc)


def test_undocumented_methods_are_refused(guarded: RunningProxy, document: dict[str, Any]) -> None:
    for path, ops in document["paths"].items():
        for method in {"get", "post", "put", "delete"} - set(ops):
            response = httpx.request(method, guarded.base_url + example_path(path), headers=AUTH)
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
