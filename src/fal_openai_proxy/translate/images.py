"""OpenAI image parameters -> a fal image app's input; fal's output -> OpenAI's body.

Pure: the app's row (`fal/media_apps.py`) says which fields exist; nothing here does I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..fal.media_apps import MediaApp
from ..openai.errors import invalid_request, unsupported

_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
MIN_SIDE, MAX_SIDE = 64, 4096


@dataclass(frozen=True)
class ImageParams:
    """The OpenAI parameters that reach fal (validated for type by the request model)."""

    prompt: str
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    output_format: str | None = None
    strength: float | None = None


def parse_size(size: str | None) -> tuple[int, int] | None:
    """`1536x1024` -> (1536, 1024); `auto` or None -> None (the app's default)."""
    if size is None or size == "auto":
        return None
    match = _SIZE.match(size)
    if not match:
        raise invalid_request(
            f"Invalid value for 'size': {size!r}. Expected 'auto' or 'WIDTHxHEIGHT', "
            "e.g. '1024x1024'.",
            param="size",
            code="invalid_value",
        )
    width, height = int(match[1]), int(match[2])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise invalid_request(
            f"Invalid value for 'size': each side must be {MIN_SIDE} to {MAX_SIDE} pixels.",
            param="size",
            code="invalid_value",
        )
    return width, height


def nearest_ratio(width: int, height: int, ratios: tuple[str, ...]) -> str:
    """The allowed `W:H` closest to width/height (compared on a log scale)."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(ratios, key=distance)


def build_image_input(app: MediaApp, params: ImageParams) -> dict[str, Any]:
    """The fal input for a text-to-image or edit app (edit images are added by the caller)."""
    fal: dict[str, Any] = {"prompt": params.prompt}
    n = params.n if params.n is not None else 1
    if n > app.max_images:
        raise invalid_request(
            f"Invalid 'n': {app.app_id} makes at most {app.max_images} image(s) per request.",
            param="n",
            code="invalid_value",
        )
    if app.max_images > 1:
        fal["num_images"] = n
    size = parse_size(params.size)
    if size is not None:
        if app.size_field == "image_size":
            fal["image_size"] = {"width": size[0], "height": size[1]}
        elif app.size_field == "aspect_ratio":
            fal["aspect_ratio"] = nearest_ratio(*size, app.aspect_ratios)
        # "none": the output follows the input image; `size` is ignored (README).
    if params.quality is not None and params.quality in app.quality:
        fal.update(app.quality[params.quality])
    if params.style is not None and params.style in app.style:
        fal.update(app.style[params.style])
    if params.output_format is not None and app.output_formats:
        fal["output_format"] = _output_format(app, params.output_format)
    if params.strength is not None:
        if not app.strength:
            raise unsupported("strength", f"is not supported by {app.app_id}.")
        fal["strength"] = params.strength
    return fal


def _output_format(app: MediaApp, value: str) -> str:
    wanted = "jpeg" if value == "jpg" else value
    if wanted not in app.output_formats:
        raise invalid_request(
            f"Invalid value for 'output_format': {app.app_id} produces "
            f"{' or '.join(app.output_formats)}, not {value!r}.",
            param="output_format",
            code="unsupported_value",
        )
    return wanted


def image_urls(output: dict[str, Any]) -> list[str]:
    """The URLs of fal's `images: [{url, ...}]`, every image app's output
    (docs/fal-protocol.md §10)."""
    images = output.get("images")
    if not isinstance(images, list):
        images = [output["image"]] if isinstance(output.get("image"), dict) else []
    urls = [i.get("url") for i in images if isinstance(i, dict)]
    return [u for u in urls if isinstance(u, str) and u]


def image_sizes(output: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Each output image's (width, height) as fal states them (for billing by megapixel)."""
    images = output.get("images")
    if not isinstance(images, list):
        images = [output["image"]] if isinstance(output.get("image"), dict) else []
    return [(i.get("width"), i.get("height")) for i in images if isinstance(i, dict)]


def images_body(
    created: int,
    urls: list[str] | None,
    b64: list[str] | None,
    revised_prompt: str | None,
    output: dict[str, Any],
) -> dict[str, Any]:
    """OpenAI's ImagesResponse: `{created, data: [{url | b64_json, revised_prompt?}]}`."""
    items: list[dict[str, Any]] = []
    for value in b64 if b64 is not None else urls or []:
        item: dict[str, Any] = {"b64_json" if b64 is not None else "url": value}
        if revised_prompt:
            item["revised_prompt"] = revised_prompt
        items.append(item)
    body: dict[str, Any] = {"created": created, "data": items}
    usage = image_usage(output.get("usage"))
    if usage is not None:
        body["usage"] = usage
    return body


def image_usage(raw: Any) -> dict[str, Any] | None:
    """fal's usage, only when it has OpenAI's token counts (never invented)."""
    if not isinstance(raw, dict):
        return None
    counts = {k: raw.get(k) for k in ("input_tokens", "output_tokens", "total_tokens")}
    if not all(isinstance(v, int) for v in counts.values()):
        return None
    details = raw.get("input_tokens_details")
    if not isinstance(details, dict):
        details = {"text_tokens": counts["input_tokens"], "image_tokens": 0}
    return {**counts, "input_tokens_details": details}


def revised_prompt(output: dict[str, Any], sent: str) -> str | None:
    """fal's `prompt` when it differs from the one sent: an app that rewrote it. flux's
    outputs echo the prompt; Ideogram v2 (`{images, seed}`) and Recraft v3 (`{images}`)
    return none, so never a `revised_prompt` (docs/fal-protocol.md §10)."""
    prompt = output.get("prompt")
    return prompt if isinstance(prompt, str) and prompt and prompt != sent else None
