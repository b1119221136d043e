"""POST /v1/images/generations and /v1/images/edits: parse, hand to the image service."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..context import request_context
from ..openai.media_requests import parse_image_request, read_form
from ..openai.sse import ClientGone
from ..state import proxy_state
from .chat import CLIENT_CLOSED
from .media_paths import MULTIPART_PATHS

__all__ = ["MULTIPART_PATHS", "create_image", "create_image_edit"]

MAX_EDIT_FILES = 17  # up to 16 images and a mask


async def create_image(request: Request) -> Response:
    image_request = parse_image_request(await request.body())
    service = proxy_state(request).images
    try:
        return await service.generate(
            image_request, request_context(request.scope), request.receive
        )
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)


async def create_image_edit(request: Request) -> Response:
    state = proxy_state(request)
    form = await read_form(
        request, max_files=MAX_EDIT_FILES, max_file_bytes=state.settings.max_file_bytes
    )
    try:
        return await state.images.edit(form, request_context(request.scope), request.receive)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
