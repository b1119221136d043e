"""Auth modes (pass-through, API_KEY), the model catalog, and the any-llm apps."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from fal_openai_proxy.services.catalog import OPENAI_CHAT_IDS, OPENAI_EMBEDDING_IDS

from ..support.asserts import error_of
from ..support.chat import MODEL, Records, ask
from ..support.servers import API_KEY, API_KEY_2, CLIENT_FAL_KEY, FAL_KEY, RunningProxy

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def keys_seen(records: list[dict[str, Any]]) -> set[str | None]:
    return {r["key"] for r in records if "key" in r}


# -- pass-through mode -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pass_through(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(fal_key=None, retry_budget=0.5, first_event_timeout=2)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_pass_through_sends_the_clients_key_to_fal(
    pass_through: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    stream: bool,
) -> None:
    client = make_client(pass_through, api_key=CLIENT_FAL_KEY)
    if stream:
        chunks = client.chat.completions.create(model=MODEL, messages=ask("mine"), stream=True)
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = client.chat.completions.create(model=MODEL, messages=ask("mine"))
        answer = completion.choices[0].message.content or ""
    assert answer == "Simulated answer to: mine"
    calls = [r for r in sim_log() if r["kind"] in ("stream", "submit", "status_stream", "result")]
    assert calls
    # Compared, never shown: a failure message must not contain a key.
    only_client_key = keys_seen(calls) == {CLIENT_FAL_KEY}
    assert only_client_key, "fal did not receive exactly the client's key"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_pass_through_key_fal_refuses_is_401(
    pass_through: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    stream: bool,
) -> None:
    client = make_client(pass_through, api_key="not-a-fal-key-0000")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask("who"), stream=stream)
    exc = caught.value
    assert exc.status_code == 401
    assert exc.type == "authentication_error"
    assert exc.code == "invalid_api_key"
    assert "not-a-fal-key-0000" not in exc.message
    assert len(sim_log("stream" if stream else "submit")) == 1  # not retried


def test_pass_through_fal_403_is_401(
    pass_through: RunningProxy, make_client: Callable[..., openai.OpenAI]
) -> None:
    directive = '[[sim {"status": 403, "body": {"detail": "Forbidden"}}]]'
    client = make_client(pass_through, api_key=CLIENT_FAL_KEY)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(directive))
    assert caught.value.code == "invalid_api_key"
    assert "Forbidden" in caught.value.message


def test_pass_through_without_authorization_is_401(
    pass_through: RunningProxy, http: httpx.Client, sim_log: Records
) -> None:
    response = http.post(
        pass_through.v1 + "/chat/completions", json={"model": MODEL, "messages": ask("anon")}
    )
    error = error_of(response, 401)
    assert error["type"] == "authentication_error"
    assert error["code"] == "missing_api_key"
    assert sim_log() == []


# -- API_KEY mode ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(api_key=f"{API_KEY},{API_KEY_2}")


@pytest.mark.parametrize("which", [0, 1], ids=["first-key", "second-key"])
def test_api_keys_all_work(
    guarded: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records, which: int
) -> None:
    client = make_client(guarded, api_key=(API_KEY, API_KEY_2)[which])
    completion = client.chat.completions.create(model=MODEL, messages=ask("let me in"))
    assert completion.choices[0].message.content == "Simulated answer to: let me in"
    assert [m.id for m in client.models.list()]
    server_key_only = keys_seen(sim_log("submit")) == {FAL_KEY}
    assert server_key_only, "fal must see the server's key, not the client's API key"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_wrong_api_key_is_401(
    guarded: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    stream: bool,
) -> None:
    client = make_client(guarded, api_key="wrong-proxy-key")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask("let me in"), stream=stream)
    exc = caught.value
    assert exc.status_code == 401
    assert exc.type == "authentication_error"
    assert exc.code == "invalid_api_key"
    assert sim_log() == []


def test_missing_api_key_is_401(
    guarded: RunningProxy, http: httpx.Client, sim_log: Records
) -> None:
    response = http.post(
        guarded.v1 + "/chat/completions", json={"model": MODEL, "messages": ask("anon")}
    )
    error = error_of(response, 401)
    assert error["type"] == "authentication_error"
    assert error["code"] == "missing_api_key"
    # A scheme other than Bearer is no key at all.
    response = http.get(guarded.v1 + "/models", headers={"Authorization": f"Basic {API_KEY}"})
    assert error_of(response, 401)["code"] == "missing_api_key"
    assert sim_log() == []


def test_models_need_the_api_key_healthz_does_not(
    guarded: RunningProxy, http: httpx.Client, make_client: Callable[..., openai.OpenAI]
) -> None:
    assert error_of(http.get(guarded.v1 + "/models"), 401)["code"] == "missing_api_key"
    assert error_of(http.get(guarded.v1 + f"/models/{MODEL}"), 401)["type"] == (
        "authentication_error"
    )
    with pytest.raises(openai.AuthenticationError):
        make_client(guarded, api_key="wrong-proxy-key").models.list()
    ok = http.get(guarded.v1 + "/models", headers={"Authorization": f"Bearer {API_KEY_2}"})
    assert ok.status_code == 200
    health = http.get(guarded.base_url + "/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


def test_healthz_without_key_in_every_mode(
    proxy: RunningProxy, pass_through: RunningProxy, http: httpx.Client
) -> None:
    for running in (proxy, pass_through):
        response = http.get(running.base_url + "/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


# -- the model catalog (router) --------------------------------------------------------------


def test_models_list_shape(proxy: RunningProxy, http: httpx.Client) -> None:
    response = http.get(proxy.v1 + "/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["data"]
    ids = [m["id"] for m in body["data"]]
    assert len(ids) == len(set(ids))
    assert MODEL in ids and "anthropic/claude-sonnet-4.6" in ids
    for model in body["data"]:
        # Video models also say what they make (`kind`); the others are OpenAI's four fields.
        assert set(model) - {"kind"} == {"id", "object", "created", "owned_by"}
        assert model.get("kind", "text-to-video") in ("text-to-video", "image-to-video", "extend")
        assert model["object"] == "model"
        # dall-e-3 etc. stand for fal's apps; gpt-4o etc. for OpenAI's models on fal.
        bare = "openai" if model["id"] in (*OPENAI_CHAT_IDS, *OPENAI_EMBEDDING_IDS) else "fal"
        owner = model["id"].split("/")[0] if "/" in model["id"] else bare
        assert model["owned_by"] == owner, model


def test_models_via_sdk(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    assert MODEL in [m.id for m in models]
    retrieved = client.models.retrieve(MODEL)  # the SDK sends the "/" as %2F
    assert (retrieved.id, retrieved.object, retrieved.owned_by) == (MODEL, "model", "google")


@pytest.mark.parametrize(
    "model_id", [MODEL, "anthropic/claude-sonnet-4.6", "some-lab/model-nobody-listed-v9"]
)
def test_retrieve_model_with_a_slash(
    proxy: RunningProxy, http: httpx.Client, model_id: str
) -> None:
    response = http.get(proxy.v1 + f"/models/{model_id}")
    assert response.status_code == 200
    assert response.json()["id"] == model_id
    assert response.json()["owned_by"] == model_id.split("/")[0]


def test_retrieve_unknown_model_without_a_slash_is_404(
    proxy: RunningProxy, http: httpx.Client
) -> None:
    error = error_of(http.get(proxy.v1 + "/models/nonexistent-model"), 404)
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    # The chat agrees: a bare id that stands for nothing is the same 404, before fal.
    body = {"model": "nonexistent-model", "messages": ask("hi")}
    error = error_of(http.post(proxy.v1 + "/chat/completions", json=body), 404)
    assert (error["code"], error["param"]) == ("model_not_found", "model")


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1", "o3", "gpt-4o-mini"])
@pytest.mark.parametrize("tools", [False, True], ids=["prompt-route", "openai-route"])
def test_a_bare_openai_id_is_openais_model_on_fal(
    client: openai.OpenAI, sim_log: Records, model: str, tools: bool
) -> None:
    retrieved = client.models.retrieve(model)
    assert (retrieved.id, retrieved.owned_by) == (model, "openai")
    assert model in [m.id for m in client.models.list()]
    extra: dict[str, Any] = {"tools": [WEATHER]} if tools else {}
    completion = client.chat.completions.create(model=model, messages=ask("hi"), **extra)
    # The prompt route answers with the client's id; the OpenAI route with OpenRouter's.
    assert completion.model == (f"openai/{model}" if tools else model)
    (call,) = [r for r in sim_log() if r["kind"] in ("submit", "openai")]
    assert call["body"]["model"] == f"openai/{model}"  # fal gets OpenRouter's id


def test_embedding_models_are_listed_and_bare_ids_map(
    client: openai.OpenAI, sim_log: Records
) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"openai/text-embedding-3-small", "text-embedding-3-small"} <= set(ids)
    result = client.embeddings.create(model="text-embedding-3-small", input=["a"])
    assert result.data and result.data[0].embedding
    (call,) = sim_log("openai")
    assert call["body"]["model"] == "openai/text-embedding-3-small"


def test_router_accepts_any_openrouter_id(client: openai.OpenAI, sim_log: Records) -> None:
    model = "some-lab/model-nobody-listed-v9"
    completion = client.chat.completions.create(model=model, messages=ask("hi there"))
    assert completion.model == model
    (submit,) = sim_log("submit")
    assert submit["app"] == "openrouter/router"
    assert submit["body"]["model"] == model


# -- any-llm and enterprise apps -------------------------------------------------------------


@pytest.fixture(scope="module")
def any_llm(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(fal_chat_app="fal-ai/any-llm", fal_vision_app="fal-ai/any-llm/vision")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_any_llm_rejects_a_model_outside_its_list_before_fal(
    any_llm: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    stream: bool,
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        make_client(any_llm).chat.completions.create(
            model="anthropic/claude-sonnet-4.6", messages=ask("hi"), stream=stream
        )
    exc = caught.value
    assert exc.status_code == 404
    assert exc.code == "model_not_found"
    assert exc.param == "model"
    assert exc.type == "invalid_request_error"
    assert sim_log() == []


def test_any_llm_model_list_and_retrieve(any_llm: RunningProxy, http: httpx.Client) -> None:
    ids = [m["id"] for m in http.get(any_llm.v1 + "/models").json()["data"]]
    assert MODEL in ids
    assert "anthropic/claude-sonnet-4.6" not in ids
    assert http.get(any_llm.v1 + f"/models/{MODEL}").status_code == 200
    error = error_of(http.get(any_llm.v1 + "/models/anthropic/claude-sonnet-4.6"), 404)
    assert error["code"] == "model_not_found"


def test_any_llm_non_stream_has_no_usage(
    any_llm: RunningProxy, http: httpx.Client, sim_log: Records
) -> None:
    response = http.post(
        any_llm.v1 + "/chat/completions", json={"model": MODEL, "messages": ask("no usage")}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Simulated answer to: no usage"
    assert "usage" not in body
    (submit,) = sim_log("submit")
    assert submit["app"] == "fal-ai/any-llm"
    assert submit["body"]["model"] == MODEL


def test_any_llm_non_stream_via_sdk(
    any_llm: RunningProxy, make_client: Callable[..., openai.OpenAI]
) -> None:
    completion = make_client(any_llm).chat.completions.create(model=MODEL, messages=ask("sdk"))
    assert completion.usage is None
    assert completion.choices[0].message.content == "Simulated answer to: sdk"


def test_any_llm_stream_usage_chunk_is_null(
    any_llm: RunningProxy, http: httpx.Client, make_client: Callable[..., openai.OpenAI]
) -> None:
    body = {
        "model": MODEL,
        "messages": ask("count"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http.stream("POST", any_llm.v1 + "/chat/completions", json=body) as response:
        datas = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    last = json.loads(datas[-2])
    assert last["choices"] == []
    assert "usage" in last and last["usage"] is None
    chunks = list(
        make_client(any_llm).chat.completions.create(
            model=MODEL,
            messages=ask("count"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is None
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Simulated answer to: count"
    )


def test_any_llm_vision_app(
    any_llm: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        }
    ]
    completion = make_client(any_llm).chat.completions.create(
        model="openai/gpt-4o", messages=messages
    )
    assert completion.choices[0].message.content == "Simulated answer to: What is this? [images: 1]"
    (submit,) = sim_log("submit")
    assert submit["app"] == "fal-ai/any-llm/vision"
    assert submit["body"]["image_urls"] == ["https://example.com/a.png"]


@pytest.mark.parametrize(
    ("chat_app", "vision_app"),
    [
        ("fal-ai/any-llm/enterprise", "fal-ai/any-llm/vision"),
        ("openrouter/router/enterprise", "openrouter/router/vision"),
    ],
    ids=["any-llm", "router"],
)
def test_enterprise_apps(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
    chat_app: str,
    vision_app: str,
) -> None:
    running = proxy_factory(fal_chat_app=chat_app, fal_vision_app=vision_app)
    client = make_client(running)
    completion = client.chat.completions.create(model=MODEL, messages=ask("corp"))
    assert completion.choices[0].message.content == "Simulated answer to: corp"
    chunks = client.chat.completions.create(model=MODEL, messages=ask("corp"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Simulated answer to: corp"
    )
    assert [r["app"] for r in sim_log() if r["kind"] in ("submit", "stream")] == [
        chat_app,
        chat_app,
    ]
    if chat_app.startswith("fal-ai/any-llm"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="anthropic/claude-sonnet-4.6", messages=ask("x"))
        assert caught.value.code == "model_not_found"
    else:
        assert completion.usage is not None
