"""POST /v1/images/generations (JSON) and /v1/images/edits (a multipart form)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import OpenAIModel, parse_json
from .errors import unsupported


class ImageGenerationRequest(OpenAIModel):
    prompt: str = Field(min_length=1)
    model: str | None = None
    n: int | None = Field(None, ge=1, le=10)
    size: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    quality: str | None = None
    style: str | None = None
    output_format: str | None = None
    stream: bool | None = None


# -- the multipart forms, described for /openapi.json ----------------------------------------
# `Form` reads these bodies field by field (the services check each value, with the same
# limits as below); these models only describe them. tests/e2e/test_openapi.py sends a body
# that breaks each model's limits and expects the server's 400.

IMAGE_FILE = "PNG, JPEG, WebP or GIF (checked by its bytes), at most MAX_FILE_BYTES."


class ImageEditForm(OpenAIModel):
    """images.edit, as multipart/form-data. `model` defaults to FAL_EDIT_APP."""

    image: bytes | list[bytes] = Field(
        description="The image; several as repeated `image[]` parts (up to the app's limit: "
        "4 for fal-ai/flux-pro/kontext/multi, else 1). " + IMAGE_FILE
    )
    prompt: str = Field(min_length=1)
    mask: bytes | None = Field(
        None, description="Required by fill apps, refused by the others. " + IMAGE_FILE
    )
    model: str | None = None
    n: int | None = Field(None, ge=1, le=10)
    size: str | None = Field(None, description="`auto` or `WIDTHxHEIGHT`, each side 64-4096.")
    response_format: Literal["url", "b64_json"] | None = None
    output_format: str | None = None
    quality: str | None = None
    strength: float | None = Field(None, ge=0.01, le=1.0, description="Apps that take it.")


def parse_image_request(body: bytes) -> ImageGenerationRequest:
    request = parse_json(ImageGenerationRequest, body)
    if request.stream:
        raise unsupported("stream", "is not supported: fal's image apps answer once.")
    return request
