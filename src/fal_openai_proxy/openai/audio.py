"""POST /v1/audio/speech (JSON), /v1/audio/transcriptions and /translations (multipart
forms, described here for /openapi.json; `forms.Form` reads them field by field)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import OpenAIModel, parse_json
from .errors import unsupported

SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class SpeechRequest(OpenAIModel):
    model: str = Field(min_length=1)
    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field(min_length=1)
    response_format: SpeechFormat | None = Field(
        None, description="OpenAI's formats; `mp3` when absent, as OpenAI's default."
    )
    speed: float | None = Field(None, ge=0.25, le=4.0)
    instructions: str | None = None
    stream_format: str | None = None


class TranslationForm(OpenAIModel):
    """audio.translations (English out), as multipart/form-data."""

    file: bytes = Field(
        description="mp3, mp4, mpeg, mpga, m4a, wav or webm (by its name, else its type), at "
        "most MAX_FILE_BYTES."
    )
    model: str = Field(min_length=1, description="fal-ai/whisper, fal-ai/wizper or whisper-1.")
    prompt: str | None = Field(None, description="Sent to fal-ai/whisper; wizper has none.")
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] | None = None
    temperature: float | None = Field(None, ge=0.0, le=1.0, description="Accepted, ignored.")
    stream: bool | None = Field(
        None,
        description="`true`: OpenAI's `transcript.text.delta` events, then "
        "`transcript.text.done`, as server-sent events (with `json` or `text` only).",
    )


class TranscriptionForm(TranslationForm):
    """audio.transcriptions, as multipart/form-data."""

    language: str | None = Field(None, description="The spoken language (e.g. `en`).")


def parse_speech_request(body: bytes) -> SpeechRequest:
    request = parse_json(SpeechRequest, body)
    if request.stream_format not in (None, "audio"):
        raise unsupported("stream_format", "must be 'audio': the audio is streamed as bytes.")
    return request
