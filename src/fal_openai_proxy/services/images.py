"""images.generate and images.edit: OpenAI request -> one queued fal call -> ImagesResponse.

Through fal's queue, so that a slow model never holds a connection open; a client that
leaves cancels the fal request (`FalClient.run_queued`). Input images go to fal as data URIs
up to INLINE_FILE_BYTES, and through fal's storage above it (docs/fal-protocol.md §12.1).
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive

from ..base.settings import Settings
from ..fal.client import FalClient
from ..fal.errors import FalBrokenError
from ..fal.files import FalFiles
from ..fal.media_apps import MediaApp
from ..fal.media_fetch import MediaBudget
from ..openai.errors import invalid_request, unsupported
from ..openai.forms import Form, FormFile
from ..openai.images import ImageGenerationRequest
from ..openai.sse import until_disconnect
from ..serve.context import RequestContext
from ..translate.cost import Measure, billed_megapixels
from ..translate.images import (
    ImageParams,
    build_image_input,
    image_sizes,
    image_urls,
    images_body,
    revised_prompt,
)
from .catalog import Catalog
from .media import note_request, resolve_app
from .pricing import CostMeter

log = logging.getLogger(__name__)
# Image types fal's edit apps accept (docs/fal-protocol.md §12.2), told apart by their first bytes.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image(data: bytes) -> str | None:
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class ImageService:
    def __init__(
        self,
        settings: Settings,
        fal: FalClient,
        files: FalFiles,
        catalog: Catalog,
        meter: CostMeter,
    ):
        self._settings = settings
        self._fal = fal
        self._files = files
        self._catalog = catalog
        self._meter = meter

    async def generate(
        self, request: ImageGenerationRequest, context: RequestContext, receive: Receive
    ) -> Response:
        budget = self._files.budget()  # the request's deadline and bytes, from now
        app = resolve_app(request.model, "image", self._settings.fal_image_app, self._catalog)
        params = ImageParams(
            request.prompt,
            request.n,
            request.size,
            request.quality,
            request.style,
            request.output_format,
        )
        fal_input = build_image_input(app, params)
        model = request.model or app.app_id
        note_request(context, self._catalog, model, app)
        return await self._run(
            app, model, fal_input, params.n, request.response_format, context, receive, budget
        )

    async def edit(self, form: Form, context: RequestContext, receive: Receive) -> Response:
        budget = self._files.budget()  # the request's deadline and bytes, from now
        model = form.text("model")
        app = resolve_app(model, "edit", self._settings.fal_edit_app, self._catalog)
        prompt = form.require("prompt")
        response_format = form.choice("response_format", ("url", "b64_json"))
        if form.boolean("stream"):  # never ignored: the SDK would wait for events
            raise unsupported("stream", "is not supported: fal's edit apps answer once.")
        images = form.files.get("image", [])
        if not images:
            raise invalid_request(
                "Missing required parameter: 'image'.", "image", "missing_required_parameter"
            )
        if len(images) > app.max_input_images:
            raise invalid_request(
                f"Invalid 'image': {app.app_id} takes at most {app.max_input_images} image(s), "
                f"got {len(images)}.",
                "image",
                "too_many_images",
            )
        masks = form.files.get("mask", [])
        if masks and not app.mask:
            raise unsupported("mask", f"is not supported by {app.app_id}: it takes no mask.")
        if app.mask and not masks:
            raise invalid_request(
                f"Missing required parameter: 'mask' ({app.app_id} needs one).",
                "mask",
                "missing_required_parameter",
            )
        params = ImageParams(
            prompt,
            form.number("n", int, 1, 10),
            form.text("size"),
            form.text("quality"),
            None,
            form.text("output_format"),
            form.number("strength", float, 0.01, 1.0),
        )
        fal_input = build_image_input(app, params)
        model = model or app.app_id
        note_request(context, self._catalog, model, app)
        urls = await until_disconnect(
            self._file_urls([*images, *masks[:1]], context.fal_key, budget), receive
        )
        if app.image_field == "image_urls":
            fal_input["image_urls"] = urls[: len(images)]
        else:
            fal_input["image_url"] = urls[0]
        if masks:
            fal_input["mask_url"] = urls[-1]
        return await self._run(
            app, model, fal_input, params.n, response_format, context, receive, budget
        )

    async def _file_urls(
        self, files: list[FormFile], client_key: str | None, budget: MediaBudget
    ) -> list[str]:
        """Each image as fal will read it: a data URI if small, else a fal storage URL."""
        urls = []
        for file in files:
            content_type = sniff_image(file.data)
            if content_type is None:
                raise invalid_request(
                    f"Invalid '{file.field}': {file.filename or 'the file'} is not a PNG, "
                    "JPEG, WebP or GIF image.",
                    file.field,
                    "invalid_image_format",
                )
            if len(file.data) <= self._settings.inline_file_bytes:
                encoded = base64.b64encode(file.data).decode("ascii")
                urls.append(f"data:{content_type};base64,{encoded}")
            else:
                urls.append(await self._files.upload(file.data, content_type, client_key, budget))
        return urls

    async def _run(
        self,
        app: MediaApp,
        model: str,
        fal_input: dict[str, Any],
        n: int | None,
        response_format: str | None,
        context: RequestContext,
        receive: Receive,
        budget: MediaBudget,
    ) -> Response:
        if self._settings.log_prompts:
            context.prompt = fal_input
            log.info("prompt", extra={"request_id": context.log.request_id, "fal_input": fal_input})
        result = await until_disconnect(
            self._fal.run_queued(app.app_id, fal_input, context.fal_key), receive
        )
        context.log.fal_request_id = result.request_id
        made = image_urls(result.output)
        urls = made[: n or 1]  # no more images than were asked for, whatever the app answered
        if not urls:
            raise FalBrokenError("fal's answer has no images")
        usage = context.usage
        usage.fal_app, usage.billable_units = app.app_id, result.billable_units
        sizes = image_sizes(result.output)
        used = Measure(images=len(made), megapixels=billed_megapixels(sizes))  # fal's count
        self._meter.settle(usage, model=model, used=used)
        b64 = None
        if response_format == "b64_json":
            b64 = await until_disconnect(self._encode_all(urls, budget), receive)
        body = images_body(
            int(time.time()),
            urls,
            b64,
            revised_prompt(result.output, str(fal_input["prompt"])),
            result.output,
        )
        return Response(orjson.dumps(body), media_type="application/json")

    async def _encode_all(self, urls: list[str], budget: MediaBudget) -> list[str]:
        # One after another: n is small, and a failure then leaves nothing running.
        return [await self._encode(url, budget) for url in urls]

    async def _encode(self, url: str, budget: MediaBudget) -> str:
        if url.startswith("data:"):  # fal's sync_mode answer: already base64
            encoded = url.partition(",")[2]
            budget.take(len(encoded) * 3 // 4)  # it counts against the budget too
            return encoded
        data, _ = await self._files.fetch(url, budget)
        return base64.b64encode(data).decode("ascii")
