"""Audio: transcriptions and translations (speech-to-text), and speech (text-to-speech).

Each is one queued fal call (a client that leaves cancels it). The input audio goes to fal
as a data URI up to INLINE_FILE_BYTES, and through fal's storage above it. A streamed
transcription is OpenAI's events, built from fal's chunks. Speech audio is streamed to the
client as it arrives from fal's file URL (the key never sent there), encoded on the way when
the client asked for another format than the app's.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..base.settings import Settings
from ..fal.client import FalClient
from ..fal.errors import FalBrokenError, FalError, FalStatusError
from ..fal.files import FalFiles
from ..fal.media_fetch import MediaBudget
from ..openai.audio import SpeechRequest
from ..openai.errors import invalid_request, unsupported
from ..openai.forms import Form
from ..openai.sse import SSE_HEADERS, ClientGone, cancelled_on_disconnect, until_disconnect
from ..serve.context import RequestContext, Usage
from ..translate.audio import (
    TRANSCRIPT_FORMATS,
    announced_seconds,
    audio_content_type,
    audio_seconds,
    detected_language,
    segments,
    speech_format,
    speech_input,
    speech_url,
    srt,
    transcript_events,
    transcript_text,
    transcription_input,
    verbose_body,
    vtt,
    wav_duration,
)
from ..translate.cost import Measure
from ..translate.speech_audio import SPEECH_FORMATS, AudioError, SpeechEncoder, WavReader
from .catalog import Catalog
from .media import note_request, resolve_app
from .pricing import CostMeter

log = logging.getLogger(__name__)


class AudioService:
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

    async def transcribe(
        self, form: Form, task: str, context: RequestContext, receive: Receive
    ) -> Response:
        """`task` is "transcribe" or "translate" (fal's own names, docs/fal-protocol.md §12.3)."""
        budget = self._files.budget()  # the request's deadline, from now
        model = form.require("model")
        app = resolve_app(model, "stt", self._settings.fal_transcribe_app, self._catalog)
        files = form.files.get("file", [])
        if not files:
            raise invalid_request(
                "Missing required parameter: 'file'.", "file", "missing_required_parameter"
            )
        file = files[0]
        content_type = audio_content_type(file.filename, file.content_type)
        if content_type is None:
            raise invalid_request(
                f"Invalid 'file': {file.filename[:80] or 'the file'} is not a supported audio "
                "type. Supported formats: mp3, mp4, mpeg, mpga, m4a, wav, webm.",
                "file",
                "invalid_file_format",
            )
        response_format = form.choice("response_format", TRANSCRIPT_FORMATS) or "json"
        stream = form.boolean("stream")
        if stream and response_format not in ("json", "text"):
            raise unsupported(
                "stream",
                f"works with response_format 'json' or 'text', not {response_format!r}: "
                "OpenAI's transcript events carry text only.",
            )
        language = form.text("language") if task == "transcribe" else None
        temperature = form.number("temperature", float, 0.0, 1.0)
        note_request(context, self._catalog, model, app)
        context.log.stream = stream
        audio_url = await until_disconnect(
            self._file_url(file.data, content_type, context.fal_key, budget), receive
        )
        fal_input = transcription_input(
            app, audio_url, task=task, language=language, prompt=form.text("prompt")
        )
        result = await until_disconnect(
            self._fal.run_queued(app.app_id, fal_input, context.fal_key), receive
        )
        context.log.fal_request_id = result.request_id
        duration = wav_duration(file.data) if content_type == "audio/wav" else None
        context.usage.audio_seconds_in = audio_seconds(result.output, duration)
        self._settle(context, app.app_id, model, result.billable_units)
        if stream:
            return Response(transcript_events(result.output), headers=dict(_SSE_HEADERS))
        return _transcript(result.output, response_format, task, language, duration, temperature)

    def _settle(
        self, context: RequestContext, app: str, model: str | None, units: float | None
    ) -> None:
        """The request's cost: fal's billable units, else the table's price per second of
        audio in or out (whichever the request has measured)."""
        usage = context.usage
        usage.fal_app, usage.billable_units = app, units
        seconds = usage.audio_seconds_in or usage.audio_seconds_out
        self._meter.settle(usage, model=model, used=Measure(audio_seconds=seconds))

    async def _file_url(
        self, data: bytes, content_type: str, client_key: str | None, budget: MediaBudget
    ) -> str:
        if len(data) <= self._settings.inline_file_bytes:
            return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
        return await self._files.upload(data, content_type, client_key, budget)

    async def speech(
        self, request: SpeechRequest, context: RequestContext, receive: Receive
    ) -> Response:
        budget = self._files.budget()  # the request's deadline and bytes, from now
        app = resolve_app(request.model, "tts", self._settings.fal_speech_app, self._catalog)
        target = speech_format(app, request.response_format)
        fal_input = speech_input(app, request.input, request.voice, request.speed)
        note_request(context, self._catalog, request.model, app)
        result = await until_disconnect(
            self._fal.run_queued(app.app_id, fal_input, context.fal_key), receive
        )
        context.log.fal_request_id = result.request_id
        found = speech_url(result.output)
        if found is None:
            raise FalBrokenError("fal's answer has no audio")
        url, declared = found
        upstream = await until_disconnect(self._files.open(url, budget), receive)
        chunks = self._files.chunks(upstream, budget)
        if target != app.audio_format:
            # The first bytes before the status line: a failure until then is a proper error.
            encoding, first = await until_disconnect(start_encoding(chunks, target), receive)
            rest = encoded(chunks, encoding, context.usage)
            # Priced now, by fal's billable units: the seconds out are known only at the end.
            self._settle(context, app.app_id, request.model, result.billable_units)
            return AudioStreamResponse(first, rest, SPEECH_FORMATS[target].content_type)
        first = await until_disconnect(anext(chunks, b""), receive)
        context.usage.audio_seconds_out = announced_seconds(first)
        self._settle(context, app.app_id, request.model, result.billable_units)
        served = upstream.headers.get("content-type", "")
        content_type = next(
            t
            for t in (served, declared or "", app.audio_content_type, "audio/wav")
            if t.startswith("audio/")
        )
        return AudioStreamResponse(first, chunks, content_type)


# Samples are encoded a tenth of a second at a time (about a millisecond of CPU for mp3 or
# aac, docs/media.md), the event loop served between: a long text never stalls other requests.
_SLICE_SECONDS = 0.1
_SSE_HEADERS = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in SSE_HEADERS]


class Encoding:
    """fal's WAV as it arrives -> the client's format (translate/speech_audio.py)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.reader = WavReader()
        self.encoder: SpeechEncoder | None = None

    async def encode(self, data: bytes) -> AsyncIterator[bytes]:
        samples = self.reader.feed(data)
        wav = self.reader.format
        if wav is None:
            return
        if self.encoder is None:
            self.encoder = SpeechEncoder(SPEECH_FORMATS[self.target], wav)
        step = max(1, int(wav.rate * _SLICE_SECONDS)) * wav.block_align
        view = memoryview(samples)
        for start in range(0, len(view), step):
            out = self.encoder.encode(view[start : start + step])
            if out:
                yield out
            await asyncio.sleep(0)

    @property
    def seconds(self) -> float | None:
        """The audio encoded so far, in seconds."""
        wav = self.reader.format
        return wav.seconds(self.reader.sample_bytes) if wav is not None else None

    def close(self) -> None:
        if self.encoder is not None:
            self.encoder.close()


async def start_encoding(chunks: AsyncIterator[bytes], target: str) -> tuple[Encoding, bytes]:
    """Read until the WAV's samples begin; the encoding and its first bytes. fal's audio
    that is not a WAV the proxy reads is fal's failure (502)."""
    encoding = Encoding(target)
    parts: list[bytes] = []
    try:
        while encoding.encoder is None:
            data = await anext(chunks, None)
            if data is None:
                raise FalStatusError(502, "fal's speech audio ended before its samples")
            parts += [out async for out in encoding.encode(data)]
    except BaseException as exc:
        encoding.close()
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        if isinstance(exc, AudioError):  # fal's file is not what it should be: a 502
            raise FalStatusError(
                502, f"fal's speech audio cannot be encoded as {target}: {exc}"
            ) from None
        raise
    return encoding, b"".join(parts)


async def encoded(
    chunks: AsyncIterator[bytes], encoding: Encoding, usage: Usage | None = None
) -> AsyncIterator[bytes]:
    """The rest of fal's audio, encoded piece by piece; fal's file and FFmpeg's state are
    let go however it ends, and `usage` gets the seconds that went out."""
    try:
        async for data in chunks:
            async for out in encoding.encode(data):
                yield out
        assert encoding.encoder is not None
        yield encoding.encoder.finish()
    except AudioError as exc:
        raise FalStatusError(502, f"fal's speech audio broke off: {exc}") from None
    finally:
        if usage is not None:
            usage.audio_seconds_out = encoding.seconds
        encoding.close()
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _transcript(
    output: dict[str, Any],
    response_format: str,
    task: str,
    language: str | None,
    duration: float | None,
    temperature: float | None,
) -> Response:
    if response_format == "text":
        return Response(transcript_text(output) + "\n", media_type="text/plain")
    if response_format == "srt":
        return Response(srt(segments(output, duration)), media_type="text/plain")
    if response_format == "vtt":
        return Response(vtt(segments(output, duration)), media_type="text/vtt")
    if response_format == "verbose_json":
        body = verbose_body(
            output,
            task=task,
            language=detected_language(output, language),
            duration=duration,
            temperature=temperature,
        )
        return Response(orjson.dumps(body), media_type="application/json")
    return Response(orjson.dumps({"text": transcript_text(output)}), media_type="application/json")


class AudioStreamResponse(Response):
    """Audio bytes relayed as they arrive; the fal file read stops if the client leaves.

    A failure after the first byte cannot change the status any more: the response is left
    unfinished, so the client sees a broken transfer rather than a truncated success.
    """

    def __init__(self, first: bytes, rest: AsyncIterator[bytes], content_type: str) -> None:
        self.status_code = 200
        self.background = None
        self._first = first
        self._rest = rest
        self._content_type = content_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self._content_type.encode("latin-1"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            async with cancelled_on_disconnect(receive):
                await send({"type": "http.response.body", "body": self._first, "more_body": True})
                async for chunk in self._rest:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except ClientGone:
            pass
        except FalError as exc:
            log.warning("speech audio broke off after it began: %s", exc.kind)
        finally:
            aclose = getattr(self._rest, "aclose", None)
            if aclose is not None:
                await aclose()
