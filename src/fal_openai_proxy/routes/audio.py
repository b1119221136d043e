"""POST /v1/audio/transcriptions, /v1/audio/translations and /v1/audio/speech."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..openai.audio import SpeechRequest, TranscriptionForm, TranslationForm, parse_speech_request
from ..openai.forms import read_form
from ..serve.context import request_context
from ..serve.state import proxy_state
from ..translate.speech_audio import SPEECH_FORMATS
from .errors import MEDIA_ERRORS
from .registry import JSON, Body, Endpoint, Operation


async def create_transcription(request: Request) -> Response:
    return await _speech_to_text(request, "transcribe")


async def create_translation(request: Request) -> Response:
    return await _speech_to_text(request, "translate")


async def _speech_to_text(request: Request, task: str) -> Response:
    state = proxy_state(request)
    form = await read_form(request, max_files=1, max_file_bytes=state.settings.max_file_bytes)
    return await state.services.audio.transcribe(
        form, task, request_context(request.scope), request.receive
    )


async def create_speech(request: Request) -> Response:
    speech = parse_speech_request(await request.body())
    service = proxy_state(request).services.audio
    return await service.speech(speech, request_context(request.scope), request.receive)


# srt and text are text/plain, vtt text/vtt, json and verbose_json JSON, `stream=true` server-
# sent events (services/audio.py).
_TRANSCRIPTS = (JSON, "text/plain", "text/vtt", "text/event-stream")
_AUDIO_TYPES = tuple(dict.fromkeys(f.content_type for f in SPEECH_FORMATS.values()))

ROUTES = [
    Endpoint(
        "POST", "/v1/audio/transcriptions", create_transcription,
        Operation(
            "Speech to text on fal's whisper or wizper.",
            request=TranscriptionForm,
            example={"model": "whisper-1", "language": "en", "response_format": "json"},
            responses=MEDIA_ERRORS,
            media_types=_TRANSCRIPTS,
        ),
        body=Body.MULTIPART,
    ),
    Endpoint(
        "POST", "/v1/audio/translations", create_translation,
        Operation(
            "Speech to English text on fal's whisper or wizper.",
            request=TranslationForm,
            example={"model": "whisper-1"},
            responses=MEDIA_ERRORS,
            media_types=_TRANSCRIPTS,
        ),
        body=Body.MULTIPART,
    ),
    Endpoint(
        "POST", "/v1/audio/speech", create_speech,
        Operation(
            "Text to speech; the audio is streamed as it arrives from fal, encoded on the way "
            "into the `response_format` asked (mp3 by default, as OpenAI's).",
            request=SpeechRequest,
            example={"model": "tts-1", "input": "Hello from fal.", "voice": "alloy"},
            responses=MEDIA_ERRORS,
            media_types=_AUDIO_TYPES,
        ),
        body=Body.JSON,
    ),
]  # fmt: skip
