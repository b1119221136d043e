"""OpenAI's Videos API: POST/GET /v1/videos, GET/DELETE /v1/videos/{id},
GET /v1/videos/{id}/content and POST /v1/videos/{id}/remix."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..fal.errors import FalError
from ..openai.errors import invalid_request
from ..openai.forms import read_form
from ..openai.sse import ClientGone, cancelled_on_disconnect, until_disconnect
from ..openai.videos import (
    VideoCreateBody,
    VideoRemixBody,
    create_from_form,
    create_from_json,
    parse_remix,
    video_deleted,
    video_page,
)
from ..serve.context import request_context
from ..serve.errors import CLIENT_CLOSED
from ..serve.state import proxy_state
from .errors import ERRORS, MEDIA_ERRORS
from .registry import Body, Endpoint, Operation

log = logging.getLogger(__name__)

VARIANTS = ("video", "thumbnail", "spritesheet")
_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
MAX_LIST = 100


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def create_video(request: Request) -> Response:
    state = proxy_state(request)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        form = await read_form(request, max_files=1, max_file_bytes=state.settings.max_file_bytes)
        video_request = create_from_form(form)
    else:
        video_request = create_from_json(await request.body())
    # Not cancelled if the client leaves: once fal accepts the job, it is the client's.
    return _json(await state.services.videos.create(video_request, request_context(request.scope)))


async def list_videos(request: Request) -> Response:
    query = request.query_params
    limit_text = query.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIST:
        raise invalid_request(
            f"Invalid 'limit': a whole number from 1 to {MAX_LIST}.", "limit", "invalid_value"
        )
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request("Invalid 'order': 'asc' or 'desc'.", "order", "invalid_value")
    videos, more = await proxy_state(request).services.videos.list(
        request_context(request.scope), query.get("after") or None, int(limit_text), order == "desc"
    )
    return _json(video_page(videos, more))


async def retrieve_video(request: Request) -> Response:
    video_id = request.path_params["video_id"]
    video = await proxy_state(request).services.videos.retrieve(
        video_id, request_context(request.scope)
    )
    return _json(video)


async def delete_video(request: Request) -> Response:
    video_id = request.path_params["video_id"]
    await proxy_state(request).services.videos.delete(video_id, request_context(request.scope))
    return _json(video_deleted(video_id))


async def remix_video(request: Request) -> Response:
    video_id = request.path_params["video_id"]
    prompt = parse_remix(await request.body())
    context = request_context(request.scope)
    return _json(await proxy_state(request).services.videos.remix(video_id, prompt, context))


async def video_content(request: Request) -> Response:
    variant = request.query_params.get("variant", "video")
    if variant not in VARIANTS:
        raise invalid_request(
            f"Invalid 'variant': {variant[:40]!r}. One of: " + ", ".join(VARIANTS) + ".",
            "variant",
            "invalid_value",
        )
    state = proxy_state(request)
    context = request_context(request.scope)
    url = await state.services.videos.content_url(request.path_params["video_id"], variant, context)
    files = state.upstream.files
    # Through the media guard (fal/media_fetch.py): fal's hosts only, no key, bounded.
    budget = files.budget()
    try:
        upstream = await until_disconnect(files.open(url, budget), request.receive)
        chunks = files.chunks(upstream, budget)
        # The first bytes before the status line: a failure until then is a proper error.
        first = await until_disconnect(anext(chunks, b""), request.receive)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    served = upstream.headers.get("content-type", "")
    content_type = served if "/" in served and "json" not in served else _TYPES[variant]
    length = upstream.headers.get("content-length")
    return FileStreamResponse(
        first, chunks, content_type, length if length and length.isdigit() else None
    )


class FileStreamResponse(Response):
    """A file from fal's CDN relayed as it arrives; the read stops if the client leaves.

    A failure after the first byte cannot change the status any more: the response is left
    unfinished, so the client sees a broken transfer rather than a truncated success.
    """

    def __init__(
        self, first: bytes, rest: AsyncIterator[bytes], content_type: str, length: str | None
    ) -> None:
        self.status_code = 200
        self.background = None
        self._first = first
        self._rest = rest
        self._head = [(b"content-type", content_type.encode("latin-1"))]
        if length is not None:
            self._head.append((b"content-length", length.encode("latin-1")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._head})
        try:
            async with cancelled_on_disconnect(receive):
                await send({"type": "http.response.body", "body": self._first, "more_body": True})
                async for chunk in self._rest:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except ClientGone:
            pass
        except FalError as exc:
            log.warning("video content broke off after it began: %s", exc.kind)
        finally:
            aclose = getattr(self._rest, "aclose", None)
            if aclose is not None:
                await aclose()


_VIDEO = "video_" + "W10.AAAAAAAAAAAAAAAAAAAAAA"  # well formed, signed by nobody: a 404
_LOOKUP_ERRORS = {s: ERRORS[s] for s in (401, 404, 502, 503, 504)}
_ID = {"video_id": _VIDEO}

ROUTES = [
    Endpoint(
        "POST", "/v1/videos", create_video,
        Operation(
            "Start a video on a fal video app (sora-2 and sora-2-pro: FAL_VIDEO_APP); answers at "
            "once with the video `queued`. Multipart (as the openai SDK sends it, with "
            "`input_reference` as an image file) or JSON.",
            request=VideoCreateBody,
            example={"model": "fal-ai/veo3.1/fast", "prompt": "a lighthouse at dawn",
                     "seconds": "8", "size": "1280x720"},
            responses=MEDIA_ERRORS,
        ),
        body=Body.JSON_OR_MULTIPART,
    ),
    Endpoint(
        "GET", "/v1/videos", list_videos,
        Operation(
            "The caller's videos, newest first (`limit`, `after`, `order`); needs DATABASE_URL.",
            responses={**{s: ERRORS[s] for s in (400, 401, 503)}, 501: "DATABASE_URL is `none`."},
        ),
        spends=False,  # reading back what was paid for
    ),
    Endpoint(
        "GET", "/v1/videos/{video_id}", retrieve_video,
        Operation(
            "A video's status and progress, asked of fal; only the key that made it sees it.",
            responses=_LOOKUP_ERRORS, path_example=_ID, status=404,
        ),
        spends=False,  # reading back what was paid for
    ),
    Endpoint(
        "DELETE", "/v1/videos/{video_id}", delete_video,
        Operation(
            "Cancel the video at fal if it still runs, and forget it; needs DATABASE_URL.",
            responses={**_LOOKUP_ERRORS, 501: "DATABASE_URL is `none`."},
            path_example=_ID, status=404,
        ),
        spends=False,  # cancelling and forgetting cost nothing
    ),
    Endpoint(
        "GET", "/v1/videos/{video_id}/content", video_content,
        Operation(
            "The finished file (`variant=video`; `thumbnail`, `spritesheet` where the app gives "
            "them), streamed from fal's CDN within MAX_MEDIA_BYTES.",
            responses={**_LOOKUP_ERRORS, 409: "The video is not completed."},
            media_types=("video/mp4",), path_example=_ID, status=404,
        ),
        spends=False,  # reading back what was paid for
    ),
    Endpoint(
        "POST", "/v1/videos/{video_id}/remix", remix_video,
        Operation(
            "A new video from a completed one, where the table names an app that extends it "
            "(Veo 3.1's extend-video).",
            request=VideoRemixBody, example={"prompt": "and then it rains"},
            responses={**MEDIA_ERRORS, 404: ERRORS[404], 409: "The video is not completed."},
            path_example=_ID, status=404,
        ),
        body=Body.JSON,
    ),
]  # fmt: skip
