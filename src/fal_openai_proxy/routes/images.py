"""POST /v1/images/generations and /v1/images/edits: parse, hand to the image service."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..openai.forms import read_form
from ..openai.images import ImageEditForm, ImageGenerationRequest, parse_image_request
from ..serve.context import request_context
from ..serve.state import proxy_state
from .errors import MEDIA_ERRORS
from .registry import Body, Endpoint, Operation

MAX_EDIT_FILES = 17  # up to 16 images and a mask


async def create_image(request: Request) -> Response:
    image_request = parse_image_request(await request.body())
    service = proxy_state(request).services.images
    return await service.generate(image_request, request_context(request.scope), request.receive)


async def create_image_edit(request: Request) -> Response:
    state = proxy_state(request)
    form = await read_form(
        request, max_files=MAX_EDIT_FILES, max_file_bytes=state.settings.max_file_bytes
    )
    return await state.services.images.edit(form, request_context(request.scope), request.receive)


ROUTES = [
    Endpoint(
        "POST", "/v1/images/generations", create_image,
        Operation(
            "Image generation on a fal image app (`model` defaults to FAL_IMAGE_APP).",
            request=ImageGenerationRequest,
            example={"model": "fal-ai/flux/dev", "prompt": "a lighthouse at dusk",
                     "size": "1024x768"},
            responses=MEDIA_ERRORS,
        ),
        body=Body.JSON,
    ),
    Endpoint(
        "POST", "/v1/images/edits", create_image_edit,
        Operation(
            "Image edit on a fal edit app (`model` defaults to FAL_EDIT_APP); files go to fal "
            "inline up to INLINE_FILE_BYTES, else through fal's storage.",
            request=ImageEditForm,
            example={"model": "fal-ai/flux-pro/kontext", "prompt": "make it blue", "n": 1},
            responses=MEDIA_ERRORS,
        ),
        body=Body.MULTIPART,
    ),
]  # fmt: skip
