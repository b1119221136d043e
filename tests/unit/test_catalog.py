"""catalog.py: model ids each fal app accepts, /v1/models entries, and MODELS_FILE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fal_openai_proxy.openai.errors import ProxyError
from fal_openai_proxy.services.catalog import (
    ANY_LLM_MODELS,
    EMBEDDING_MODELS,
    OPENAI_EMBEDDING_IDS,
    ROUTER_MODELS,
    Catalog,
    ModelsFileError,
    load_models_file,
)

ANY_LLM = "fal-ai/any-llm"
ROUTER = "openrouter/router"


def not_found(call: object, *args: str) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        call(*args)  # type: ignore[operator]
    error = info.value
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    return error


@pytest.mark.parametrize("app", [ANY_LLM, f"{ANY_LLM}/vision", f"{ANY_LLM}/enterprise"])
def test_any_llm_accepts_its_enum(app: str) -> None:
    Catalog(ANY_LLM).check(app, "openai/gpt-4o")


@pytest.mark.parametrize("app", [ANY_LLM, f"{ANY_LLM}/vision"])
def test_any_llm_refuses_other_ids(app: str) -> None:
    error = not_found(Catalog(ANY_LLM).check, app, "anthropic/claude-sonnet-4.6")
    assert "`anthropic/claude-sonnet-4.6`" in error.message


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4.6", "whatever/x", "gpt-4"])
def test_router_accepts_anything(model: str) -> None:
    Catalog(ROUTER).check(ROUTER, model)
    Catalog(ROUTER).check(f"{ROUTER}/vision", model)


def test_get_catalog_id() -> None:
    assert Catalog(ANY_LLM).get("openai/gpt-4o") == {
        "id": "openai/gpt-4o",
        "object": "model",
        "created": 1735689600,
        "owned_by": "openai",
    }


def test_router_synthesizes_unlisted_ids() -> None:
    entry = Catalog(ROUTER).get("mistralai/mistral-large")
    assert entry["id"] == "mistralai/mistral-large"
    assert entry["owned_by"] == "mistralai"
    assert entry["object"] == "model"


@pytest.mark.parametrize("model", ["llama3", "", "/"])
def test_router_get_unknown_id_without_owner(model: str) -> None:
    not_found(Catalog(ROUTER).get, model)


def test_any_llm_get_unknown_id() -> None:
    not_found(Catalog(ANY_LLM).get, "mistralai/mistral-large")


def test_any_llm_list_is_its_enum_then_the_aliases_it_serves_and_embeddings() -> None:
    ids = [m["id"] for m in Catalog(ANY_LLM).list()]
    assert ids[: len(ANY_LLM_MODELS)] == list(ANY_LLM_MODELS)
    aliases = ids[len(ANY_LLM_MODELS) : ids.index(EMBEDDING_MODELS[0])]
    assert aliases and all(f"openai/{a}" in ANY_LLM_MODELS for a in aliases)
    assert "gpt-4.1-nano" not in ids  # not in any-llm's enum
    assert set(EMBEDDING_MODELS) | set(OPENAI_EMBEDDING_IDS) <= set(ids)


@pytest.mark.parametrize(
    ("model", "fal_id"),
    [
        ("gpt-4o", "openai/gpt-4o"),
        ("o3", "openai/o3"),
        ("gpt-4.1-mini", "openai/gpt-4.1-mini"),
        ("gpt-6-preview", "openai/gpt-6-preview"),  # a newer one of the same family
        ("text-embedding-3-small", "openai/text-embedding-3-small"),
        ("openai/gpt-4o", "openai/gpt-4o"),
        ("google/gemini-2.5-flash", "google/gemini-2.5-flash"),
        ("llama3", "llama3"),
        ("omni", "omni"),  # `o` and a digit only
    ],
)
def test_bare_openai_ids_stand_for_openais_models_on_fal(model: str, fal_id: str) -> None:
    assert Catalog(ROUTER).fal_model(model) == fal_id


@pytest.mark.parametrize(
    ("model", "fal_id"),
    [
        ("claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.5"),  # Claude Code's default
        ("claude-haiku-4-5", "anthropic/claude-haiku-4.5"),
        ("claude-opus-4-1-20250805", "anthropic/claude-opus-4.1"),
        ("claude-sonnet-4-20250514", "anthropic/claude-sonnet-4"),
        ("claude-3-5-haiku-latest", "anthropic/claude-3.5-haiku"),
        ("claude-3-7-sonnet-20250219", "anthropic/claude-3.7-sonnet"),
        ("claude-3-opus-20240229", "anthropic/claude-3-opus"),
        ("claude-instant-1.2", "claude-instant-1.2"),  # not a shape OpenRouter has
    ],
)
def test_anthropics_own_ids_stand_for_openrouters(model: str, fal_id: str) -> None:
    catalog = Catalog(ROUTER)
    assert catalog.fal_model(model) == fal_id
    if "/" in fal_id:
        catalog.check(ROUTER, model)
        assert catalog.get(model)["owned_by"] == "anthropic"


@pytest.mark.parametrize("app", [ROUTER, ANY_LLM])
@pytest.mark.parametrize("model", ["gpt-4o", "o3", "gpt-4.1"])
def test_retrieve_and_chat_agree_on_bare_openai_ids(app: str, model: str) -> None:
    catalog = Catalog(app)
    assert catalog.get(model) == {
        "id": model, "object": "model", "created": 1735689600, "owned_by": "openai"
    }  # fmt: skip
    assert model in [m["id"] for m in catalog.list()]
    catalog.check(app, model)  # the chat takes it too


@pytest.mark.parametrize("app", [ROUTER, ANY_LLM])
def test_a_bare_id_that_stands_for_nothing_is_404_for_chat_and_retrieve(app: str) -> None:
    catalog = Catalog(app)
    not_found(catalog.get, "llama3")
    not_found(catalog.check, app, "llama3")


def test_any_llm_refuses_an_openai_alias_outside_its_enum() -> None:
    catalog = Catalog(ANY_LLM)
    not_found(catalog.get, "gpt-4.1-nano")
    not_found(catalog.check, ANY_LLM, "gpt-4.1-nano")


def test_router_list_starts_with_router_models_without_duplicates() -> None:
    ids = [m["id"] for m in Catalog(ROUTER).list()]
    assert ids[: len(ROUTER_MODELS)] == list(ROUTER_MODELS)
    assert len(ids) == len(set(ids))
    assert set(ANY_LLM_MODELS) <= set(ids)


def test_metric_label() -> None:
    catalog = Catalog(ROUTER)
    assert catalog.metric_label("openai/gpt-4.1") == "openai/gpt-4.1"
    assert catalog.metric_label("someone/random-model") == "other"


def test_json_list_of_ids(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(["acme/model-a", "plain"]), encoding="utf-8")
    cards = load_models_file(path)
    assert [(c.id, c.owned_by, c.created) for c in cards] == [
        ("acme/model-a", "acme", 1735689600),
        ("plain", "fal", 1735689600),
    ]


@pytest.mark.parametrize("name", ["models.yaml", "models.yml"])
def test_yaml_list_of_objects(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(
        "- id: acme/model-a\n  owned_by: Acme Inc\n  created: 1700000000\n- id: beta/model-b\n",
        encoding="utf-8",
    )
    cards = load_models_file(path)
    assert [(c.id, c.owned_by, c.created) for c in cards] == [
        ("acme/model-a", "Acme Inc", 1700000000),
        ("beta/model-b", "beta", 1735689600),
    ]


def test_openai_data_object(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    body = {"object": "list", "data": [{"id": "acme/a", "object": "model", "owned_by": "x"}]}
    path.write_text(json.dumps(body), encoding="utf-8")
    assert [(c.id, c.owned_by) for c in load_models_file(path)] == [("acme/a", "x")]


def test_models_file_routes(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("- id: acme/a\n  route: OpenAI\n- id: acme/b\n- acme/c\n", encoding="utf-8")
    cards = load_models_file(path)
    assert [(c.id, c.route) for c in cards] == [
        ("acme/a", "openai"),
        ("acme/b", None),
        ("acme/c", None),
    ]
    assert "route" not in cards[0].to_openai()  # the proxy's own setting, not part of the answer


@pytest.mark.parametrize("route", ['"sideways"', "3"])
def test_models_file_with_a_bad_route_is_one_line(tmp_path: Path, route: str) -> None:
    path = tmp_path / "models.json"
    path.write_text(f'[{{"id": "acme/a", "route": {route}}}]', encoding="utf-8")
    with pytest.raises(ModelsFileError, match=r"models\.json: model 0: route must be one of"):
        load_models_file(path)


@pytest.mark.parametrize(
    "content",
    ['{"foo": 1}', "[1, 2]", '[{"name": "no id"}]', '"just a string"'],
)
def test_malformed_models_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "models.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=r"models\.json"):
        load_models_file(path)


def test_models_file_replaces_the_list(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("- custom/model-one\n- custom/model-two\n", encoding="utf-8")
    catalog = Catalog(ANY_LLM, load_models_file(path))
    assert [m["id"] for m in catalog.list()] == ["custom/model-one", "custom/model-two"]
    catalog.check(ANY_LLM, "custom/model-one")
    not_found(catalog.check, ANY_LLM, "openai/gpt-4o")  # built-in, but no longer listed
    assert catalog.get("custom/model-two")["owned_by"] == "custom"
    not_found(catalog.get, "openai/gpt-4o")
    assert catalog.metric_label("custom/model-one") == "custom/model-one"
    assert catalog.metric_label("openai/gpt-4o") == "other"
