"""images.generate through the openai SDK: each app's mapping, url and b64_json, the 400s,
and fal's failures mapped by the same table as chat."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from ..support.asserts import wait_for
from ..support.chat import Records, of, sim, tagged
from ..support.servers import CLIENT_FAL_KEY, RunningProxy


@pytest.fixture(scope="module")
def fast(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(
        retry_budget=0.3, request_timeout=1.5, key_rate_limit_cooldown=0, key_auth_cooldown=0
    )


def submitted(sim_log: Records, token: str) -> dict[str, Any]:
    (record,) = of(sim_log("submit"), token)
    return record


def test_generate_urls_with_image_size_and_n(client: openai.OpenAI, sim_log: Records) -> None:
    token, prompt = tagged("a lighthouse")
    result = client.images.generate(
        model="fal-ai/flux/dev", prompt=prompt, n=2, size="1536x1024", quality="hd"
    )
    assert len(result.data) == 2
    assert all(item.url and "/_sim/files/" in item.url for item in result.data)
    assert isinstance(result.created, int)
    record = submitted(sim_log, token)
    assert record["app"] == "fal-ai/flux/dev"
    assert record["path"].endswith("/fal-ai/flux/dev")
    assert record["body"] == {
        "prompt": prompt,
        "num_images": 2,
        "image_size": {"width": 1536, "height": 1024},
        "num_inference_steps": 40,
    }
    # fal drops the sub-path for the request's own URLs (docs/fal-protocol.md §1).
    (result_get,) = [r for r in sim_log("result") if r["request_id"] == record["request_id"]]
    assert result_get["path"].endswith(f"/fal-ai/flux/requests/{record['request_id']}")


@pytest.mark.parametrize(
    ("model", "size", "ratio"),
    [
        ("fal-ai/flux-pro/v1.1-ultra", "1536x1024", "3:2"),
        ("fal-ai/flux-pro/v1.1-ultra", "1024x1792", "9:16"),
        ("fal-ai/ideogram/v2", "1792x1024", "16:9"),
        ("fal-ai/ideogram/v2", "1024x1024", "1:1"),
    ],
)
def test_size_becomes_the_nearest_aspect_ratio(
    client: openai.OpenAI, sim_log: Records, model: str, size: str, ratio: str
) -> None:
    token, prompt = tagged("a fox")
    client.images.generate(model=model, prompt=prompt, size=size)  # type: ignore[arg-type]
    body = submitted(sim_log, token)["body"]
    assert body["aspect_ratio"] == ratio
    assert "image_size" not in body


def test_style_and_output_format_mapped_where_the_app_has_them(
    client: openai.OpenAI, sim_log: Records
) -> None:
    token, prompt = tagged("a boat")
    client.images.generate(model="fal-ai/recraft/v3/text-to-image", prompt=prompt, style="natural")
    assert submitted(sim_log, token)["body"] == {
        "prompt": prompt,
        "style": "realistic_image",
    }
    token, prompt = tagged("a bird")
    client.images.generate(
        model="fal-ai/flux-pro/v1.1", prompt=prompt, output_format="png", style="vivid", size="auto"
    )
    assert submitted(sim_log, token)["body"] == {
        "prompt": prompt,
        "num_images": 1,
        "output_format": "png",
    }


def test_openai_model_ids_use_the_default_image_app(
    client: openai.OpenAI, sim_log: Records
) -> None:
    for model in ("dall-e-3", "dall-e-2", "gpt-image-1"):
        token, prompt = tagged("a cat")
        client.images.generate(model=model, prompt=prompt)
        assert submitted(sim_log, token)["app"] == "fal-ai/flux/schnell"


def test_b64_json_fetches_the_image_without_the_fal_key(
    client: openai.OpenAI, sim_log: Records
) -> None:
    _, prompt = tagged("a tree")
    result = client.images.generate(
        model="fal-ai/flux/schnell", prompt=prompt, response_format="b64_json"
    )
    (item,) = result.data
    assert item.url is None and item.b64_json
    assert base64.b64decode(item.b64_json).startswith(b"\x89PNG\r\n\x1a\n")
    fetches = sim_log("file_get")
    assert len(fetches) == 1
    assert fetches[0]["body"] == {"authorization": False}


def test_any_other_fal_app_is_passed_through(client: openai.OpenAI, sim_log: Records) -> None:
    token, prompt = tagged("a car")
    with pytest.raises(openai.BadRequestError) as info:  # the simulator has no such app
        client.images.generate(model="fal-ai/some-new-model", prompt=prompt, n=3, size="512x512")
    assert info.value.status_code == 400
    (record,) = of(sim_log("submit"), token)
    assert record["app"] == "fal-ai/some-new-model"
    assert record["body"] == {
        "prompt": prompt,
        "num_images": 3,
        "image_size": {"width": 512, "height": 512},
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "google/gemini-2.5-flash", "prompt": "x"}, "model"),
        ({"model": "fal-ai/whisper", "prompt": "x"}, "model"),
        ({"model": "tts-1", "prompt": "x"}, "model"),
        ({"model": "fal-ai/flux/dev", "prompt": "x", "n": 5}, "n"),
        ({"model": "fal-ai/ideogram/v2", "prompt": "x", "n": 2}, "n"),
        ({"model": "fal-ai/flux/dev", "prompt": "x", "n": 0}, "n"),
        ({"model": "fal-ai/flux/dev", "prompt": "x", "size": "big"}, "size"),
        ({"model": "fal-ai/flux/dev", "prompt": "x", "size": "10x10"}, "size"),
        ({"model": "fal-ai/flux/dev", "prompt": "x", "output_format": "webp"}, "output_format"),
        ({"model": "fal-ai/flux/dev", "prompt": "x", "response_format": "png"}, "response_format"),
        ({"model": "fal-ai/flux/dev"}, "prompt"),
        ({"model": "fal-ai/flux/dev", "prompt": ""}, "prompt"),
        ({"model": "fal-ai/flux/dev", "prompt": "x", "stream": True}, "stream"),
        ({"model": "../../etc", "prompt": "x"}, "model"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records, body: dict[str, Any], param: str
) -> None:
    response = http.post(proxy.v1 + "/images/generations", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert sim_log("submit") == []


@pytest.mark.parametrize(
    ("directive", "status"),
    [
        ({"status": 422, "body": {"detail": [{"loc": ["body", "prompt"], "msg": "bad"}]}}, 400),
        ({"status": 429}, 429),
        ({"status": 503}, 503),
        ({"status": 500}, 502),
        ({"completed_error": "runner crashed"}, 502),
        ({"hang": True}, 504),
    ],
)
def test_fal_failures_use_the_chat_error_table(
    fast: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    directive: dict[str, Any],
    status: int,
) -> None:
    client = make_client(fast)
    with pytest.raises(openai.APIStatusError) as info:
        client.images.generate(model="fal-ai/flux/dev", prompt="x " + sim(directive))
    assert info.value.status_code == status


def test_a_client_leaving_cancels_the_fal_request(
    proxy: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    token, prompt = tagged(sim({"hang": True}))
    client = make_client(proxy).with_options(timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        client.images.generate(model="fal-ai/flux/dev", prompt=prompt)
    rid = submitted(sim_log, token)["request_id"]
    cancels = wait_for(
        lambda: [r for r in sim_log("cancel") if r["request_id"] == rid], 2, "fal's PUT .../cancel"
    )
    assert cancels[0]["path"].endswith(f"/fal-ai/flux/requests/{rid}/cancel")


def test_media_models_are_listed(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"fal-ai/flux/dev", "fal-ai/flux-pro/kontext", "fal-ai/whisper", "whisper-1"} <= ids
    assert {"fal-ai/kokoro/american-english", "dall-e-3", "tts-1"} <= ids
    assert "google/gemini-2.5-flash" in ids


def test_metrics_name_the_media_routes(
    proxy: RunningProxy, client: openai.OpenAI, http: httpx.Client
) -> None:
    client.images.generate(model="dall-e-3", prompt="a metric")
    text = http.get(proxy.base_url + "/metrics").text
    assert 'route="/v1/images/generations",status="200"' in text
    assert 'model="dall-e-3"' in text


def test_pass_through_sends_the_clients_key_to_fal_only(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
) -> None:
    running = proxy_factory(fal_key=None, inline_file_bytes=0)
    client = make_client(running, api_key=CLIENT_FAL_KEY)
    token, prompt = tagged("mine")
    client.images.generate(model="fal-ai/flux/dev", prompt=prompt, response_format="b64_json")
    assert submitted(sim_log, token)["key"] == CLIENT_FAL_KEY
    assert sim_log("file_get")[0]["body"] == {"authorization": False}
