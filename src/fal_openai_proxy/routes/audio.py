"""POST /v1/audio/transcriptions, /v1/audio/translations and /v1/audio/speech."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..context import request_context
from ..openai.media_requests import parse_speech_request, read_form
from ..openai.sse import ClientGone
from ..state import proxy_state
from .chat import CLIENT_CLOSED
from .media_paths import MULTIPART_PATHS

__all__ = ["MULTIPART_PATHS", "create_speech", "create_transcription", "create_translation"]


async def create_transcription(request: Request) -> Response:
    return await _speech_to_text(request, "transcribe")


async def create_translation(request: Request) -> Response:
    return await _speech_to_text(request, "translate")


async def _speech_to_text(request: Request, task: str) -> Response:
    state = proxy_state(request)
    form = await read_form(request, max_files=1, max_file_bytes=state.settings.max_file_bytes)
    try:
        return await state.audio.transcribe(
            form, task, request_context(request.scope), request.receive
        )
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)


async def create_speech(request: Request) -> Response:
    speech = parse_speech_request(await request.body())
    service = proxy_state(request).audio
    try:
        return await service.speech(speech, request_context(request.scope), request.receive)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
