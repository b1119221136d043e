"""images.edit through the openai SDK with real PNGs: one image, several, a mask, strength,
data URIs below INLINE_FILE_BYTES and fal storage above it, and every refusal."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from ..support.chat import Records, sim
from ..support.media import make_png
from ..support.servers import RunningProxy

PNG = make_png()


def only_submit(sim_log: Records) -> dict[str, Any]:
    (record,) = sim_log("submit")
    return record


def test_kontext_gets_one_image_as_a_data_uri(client: openai.OpenAI, sim_log: Records) -> None:
    result = client.images.edit(
        model="fal-ai/flux-pro/kontext",
        image=("cat.png", PNG, "image/png"),
        prompt="make it blue",
        size="1536x1024",
        n=2,
    )
    assert len(result.data) == 2 and all(i.url for i in result.data)
    record = only_submit(sim_log)
    body = record["body"]
    assert body["image_url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert body["aspect_ratio"] == "3:2"
    assert body["num_images"] == 2
    assert body["prompt"] == "make it blue"


def test_openai_ids_use_the_default_edit_app(client: openai.OpenAI, sim_log: Records) -> None:
    result = client.images.edit(
        model="dall-e-2", image=("a.png", PNG), prompt="x", response_format="b64_json"
    )
    assert base64.b64decode(result.data[0].b64_json or "").startswith(b"\x89PNG")
    assert only_submit(sim_log)["app"] == "fal-ai/flux-pro/kontext"  # FAL_EDIT_APP


def test_image_to_image_takes_strength(client: openai.OpenAI, sim_log: Records) -> None:
    client.images.edit(
        model="fal-ai/flux/dev/image-to-image",
        image=("a.png", PNG),
        prompt="sketch",
        extra_body={"strength": "0.4"},
    )
    body = only_submit(sim_log)["body"]
    assert body["strength"] == 0.4
    assert body["image_url"].startswith("data:image/png;base64,")


def test_fill_takes_a_mask(client: openai.OpenAI, sim_log: Records) -> None:
    mask = make_png(noise=True)
    client.images.edit(
        model="fal-ai/flux-pro/v1/fill", image=("a.png", PNG), mask=("m.png", mask), prompt="sky"
    )
    body = only_submit(sim_log)["body"]
    assert body["mask_url"] == "data:image/png;base64," + base64.b64encode(mask).decode()
    assert body["image_url"] != body["mask_url"]


def test_several_images_for_kontext_multi(client: openai.OpenAI, sim_log: Records) -> None:
    client.images.edit(
        model="fal-ai/flux-pro/kontext/multi",
        image=[("a.png", PNG), ("b.png", make_png(noise=True))],
        prompt="merge them",
    )
    urls = only_submit(sim_log)["body"]["image_urls"]
    assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)


def test_a_large_image_is_uploaded_to_fal_storage(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
) -> None:
    big = make_png(200, 200, noise=True)  # ~120 KB, over the threshold below
    client = make_client(proxy_factory(inline_file_bytes=64 * 1024))
    client.images.edit(model="fal-ai/flux-pro/kontext", image=("big.png", big), prompt="x")
    (initiate,) = sim_log("upload_initiate")
    assert initiate["body"]["content_type"] == "image/png"
    assert initiate["path"].startswith("/rest/storage/upload/initiate")
    (put,) = sim_log("upload_put")
    assert put["body"] == {"bytes": len(big), "authorization": False}
    assert "/_sim/files/" in only_submit(sim_log)["body"]["image_url"]


@pytest.fixture(scope="module")
def small(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(max_file_bytes=20_000, max_body_bytes=200_000, key_rate_limit_cooldown=0)


def post_edit(
    running: RunningProxy, http: httpx.Client, fields: dict[str, str], files: list[Any]
) -> httpx.Response:
    return http.post(running.v1 + "/images/edits", data=fields, files=files)


@pytest.mark.parametrize(
    ("model", "files", "param"),
    [
        ("fal-ai/flux-pro/kontext", [("image", ("a.txt", b"not an image", "text/plain"))], "image"),
        (
            "fal-ai/flux-pro/kontext",
            [("image[]", ("a.png", PNG)), ("image[]", ("b.png", PNG))],
            "image",
        ),
        ("fal-ai/flux-pro/kontext", [("image", ("a.png", PNG)), ("mask", ("m.png", PNG))], "mask"),
        ("fal-ai/flux-pro/v1/fill", [("image", ("a.png", PNG))], "mask"),
        (
            "fal-ai/flux-pro/kontext",
            [("image", ("a.png", make_png(120, 120, noise=True)))],
            "image",
        ),
        ("fal-ai/flux/dev", [("image", ("a.png", PNG))], "model"),
        ("fal-ai/flux-pro/kontext", [], "image"),
    ],
    ids=[
        "not-an-image",
        "too-many",
        "mask-unsupported",
        "mask-missing",
        "too-big",
        "t2i-app",
        "none",
    ],
)
def test_bad_edits_are_a_400_naming_the_field(
    small: RunningProxy,
    http: httpx.Client,
    sim_log: Records,
    model: str,
    files: list[Any],
    param: str,
) -> None:
    fields = {"model": model, "prompt": "x"}
    if not files:
        files = [("prompt", (None, "x"))]
    response = post_edit(small, http, fields, files)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert sim_log("submit") == []


def test_strength_on_an_app_without_it(small: RunningProxy, http: httpx.Client) -> None:
    fields = {"model": "fal-ai/flux-pro/kontext", "prompt": "x", "strength": "0.5"}
    response = post_edit(small, http, fields, [("image", ("a.png", PNG))])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "strength"


def test_body_over_max_body_bytes_is_a_413(small: RunningProxy, http: httpx.Client) -> None:
    files = [("image", ("a.png", b"\x89PNG\r\n\x1a\n" + b"x" * 300_000))]
    response = post_edit(small, http, {"model": "fal-ai/flux-pro/kontext", "prompt": "x"}, files)
    assert response.status_code == 413


def test_edit_fal_422_is_a_400(
    small: RunningProxy, make_client: Callable[..., openai.OpenAI]
) -> None:
    directive = {"status": 422, "body": {"detail": [{"loc": ["body", "image_url"], "msg": "bad"}]}}
    with pytest.raises(openai.BadRequestError):
        make_client(small).images.edit(
            model="fal-ai/flux-pro/kontext", image=("a.png", PNG), prompt="x " + sim(directive)
        )


def test_a_streamed_edit_is_a_400_naming_stream(client: openai.OpenAI, sim_log: Records) -> None:
    """fal's edit apps answer once: a `stream` the proxy cannot honour is refused, never
    ignored (the SDK would wait for events that never come)."""
    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(
            model="fal-ai/flux-pro/kontext",
            image=("cat.png", PNG, "image/png"),
            prompt="make it blue",
            stream=True,
        )
    assert info.value.param == "stream"
    assert sim_log("submit") == []
