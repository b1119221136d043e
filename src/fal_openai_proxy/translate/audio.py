"""Audio: OpenAI transcription and speech parameters -> fal input; fal's timestamped chunks
-> OpenAI's json, text, srt, vtt and verbose_json answers. Pure functions, no I/O.

fal's speech-to-text output is `{text, chunks: [{timestamp: [start, end], text}],
inferred_languages | languages}` (docs/fal-protocol.md §12.3); `end` may be null on the last chunk.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from typing import Any

import orjson

from ..fal.media_apps import AUDIO_TYPES, MediaApp
from ..openai.errors import invalid_request
from .speech_audio import DEFAULT_SPEECH_FORMAT, BadAudio, WavReader

TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


def audio_content_type(filename: str, content_type: str) -> str | None:
    """The file's audio type, from its extension, else its declared type; None: refused."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in AUDIO_TYPES:
        return AUDIO_TYPES[extension]
    if content_type in AUDIO_TYPES.values() or content_type in ("audio/x-wav", "audio/wave"):
        return "audio/wav" if "wav" in content_type else content_type
    return None


def transcription_input(
    app: MediaApp, audio_url: str, *, task: str, language: str | None, prompt: str | None
) -> dict[str, Any]:
    # `language: null` asks both apps to detect the language; left out, wizper assumes "en"
    # and transcribes every other language as English (docs/fal-protocol.md §12.3).
    fal: dict[str, Any] = {
        "audio_url": audio_url,
        "task": task,
        "chunk_level": "segment",
        "language": language,
    }
    if prompt is not None and app.prompt:
        fal["prompt"] = prompt  # wizper has no prompt (docs/fal-protocol.md §12.3): dropped
    return fal


def segments(output: dict[str, Any], duration: float | None) -> list[Segment]:
    """fal's chunks as timed segments; one segment for the whole text if there are none."""
    chunks = output.get("chunks")
    result: list[Segment] = []
    previous_end = 0.0
    for chunk in chunks if isinstance(chunks, list) else []:
        if not isinstance(chunk, dict) or not isinstance(chunk.get("text"), str):
            continue
        stamp = chunk.get("timestamp")
        stamp = stamp if isinstance(stamp, list | tuple) else []
        start = _seconds(stamp[0] if stamp else None, previous_end)
        end = _seconds(stamp[1] if len(stamp) > 1 else None, max(start, duration or start))
        result.append(Segment(start, max(end, start), chunk["text"]))
        previous_end = end
    if not result and transcript_text(output):
        result.append(Segment(0.0, duration or 0.0, transcript_text(output)))
    return result


def _seconds(value: Any, fallback: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return fallback


def transcript_text(output: dict[str, Any]) -> str:
    text = output.get("text")
    return text.strip() if isinstance(text, str) else ""


def detected_language(output: dict[str, Any], asked: str | None) -> str:
    """The language code fal inferred, else the one asked for, else "unknown"."""
    return inferred_language(output) or asked or "unknown"


def inferred_language(output: dict[str, Any]) -> str | None:
    """The language code fal inferred (whisper: inferred_languages; wizper: languages)."""
    for key in ("inferred_languages", "languages"):
        found = output.get(key)
        if isinstance(found, list) and found and isinstance(found[0], str):
            return found[0]
    return None


def transcript_events(output: dict[str, Any]) -> bytes:
    """A streamed transcription as OpenAI frames it: one `transcript.text.delta` per fal
    chunk, then `transcript.text.done` with the whole text (openai SDK
    `types/audio/transcription_text_{delta,done}_event.py`), each as `data: {json}` with no
    `event:` line, then `data: [DONE]` as OpenAI's other streams end. fal's apps answer once,
    so the events all come when fal has finished."""
    text = transcript_text(output)
    pieces = [s.text for s in segments(output, None)] or [text]
    pieces[0] = pieces[0].lstrip()
    pieces[-1] = pieces[-1].rstrip()
    events: list[dict[str, Any]] = [
        {"type": "transcript.text.delta", "delta": piece} for piece in pieces if piece
    ]
    done: dict[str, Any] = {"type": "transcript.text.done", "text": text}
    language = inferred_language(output)
    if language is not None:
        done["languages"] = [{"code": language}]
    events.append(done)
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def srt(parts: list[Segment]) -> str:
    cues = [
        f"{i}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(parts, start=1)
    ]
    return "\n".join(cues)


def vtt(parts: list[Segment]) -> str:
    cues = [f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text.strip()}\n" for s in parts]
    return "WEBVTT\n\n" + "\n".join(cues)


def _stamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def verbose_body(
    output: dict[str, Any],
    *,
    task: str,
    language: str,
    duration: float | None,
    temperature: float | None,
) -> dict[str, Any]:
    """OpenAI's verbose_json. fal gives no token ids or log probabilities, so those
    required segment fields carry neutral values (README says so)."""
    parts = segments(output, duration)
    total = duration if duration is not None else (parts[-1].end if parts else 0.0)
    return {
        "task": task,
        "language": language,
        "duration": round(total, 3),
        "text": transcript_text(output),
        "segments": [
            {
                "id": i,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": [],
                "temperature": temperature or 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
            for i, s in enumerate(parts)
        ],
    }


def audio_seconds(output: dict[str, Any], duration: float | None) -> float | None:
    """How long the input audio was: its WAV header's length, else where fal's last chunk
    ends (None when fal gave no timestamps)."""
    if duration is not None:
        return duration
    parts = segments(output, None)
    return parts[-1].end if parts and parts[-1].end > 0 else None


def announced_seconds(head: bytes) -> float | None:
    """How long a WAV says it is, from its first bytes (None: not a WAV, or a size unknown)."""
    reader = WavReader()
    try:
        reader.feed(head)
    except BadAudio:
        return None
    size = reader.announced_bytes
    return reader.format.seconds(size) if reader.format is not None and size else None


def wav_duration(data: bytes) -> float | None:
    """A WAV file's length in seconds (None for other formats or a broken header)."""
    try:
        with wave.open(io.BytesIO(data)) as reader:
            rate = reader.getframerate()
            return reader.getnframes() / rate if rate else None
    except (wave.Error, EOFError):
        return None


def speech_format(app: MediaApp, asked: str | None) -> str:
    """The format to answer in: the app's own, or any of OpenAI's when the app produces WAV
    (the proxy encodes it); mp3 when absent, as OpenAI's default."""
    target = asked or DEFAULT_SPEECH_FORMAT
    if target != app.audio_format and app.audio_format != "wav":
        raise invalid_request(
            f"Invalid value for 'response_format': {app.app_id} produces "
            f"'{app.audio_format}' only, not {target[:20]!r}.",
            param="response_format",
            code="unsupported_value",
        )
    return target


def speech_input(app: MediaApp, text: str, voice: str, speed: float | None) -> dict[str, Any]:
    """The fal input of a text-to-speech app; a 400 for a voice it lacks."""
    fal_voice = app.voice_aliases.get(voice, voice)
    if app.voices and fal_voice not in app.voices:
        names = [*app.voice_aliases, *app.voices]
        raise invalid_request(
            f"Invalid value for 'voice': {voice[:40]!r} is not a voice of {app.app_id}. "
            "Valid voices: " + ", ".join(names) + ".",
            param="voice",
            code="invalid_value",
        )
    fal: dict[str, Any] = {app.text_field: text, "voice": fal_voice}
    if speed is not None:
        fal["speed"] = speed
    return fal


def speech_url(output: dict[str, Any]) -> tuple[str, str | None] | None:
    """fal's `{audio: {url, content_type?}}` (docs/fal-protocol.md §12.4)."""
    audio = output.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("url"), str):
        content_type = audio.get("content_type")
        return audio["url"], content_type if isinstance(content_type, str) else None
    return None
