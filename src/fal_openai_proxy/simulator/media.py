"""fal's media apps as the simulator plays them: image, edit, speech-to-text, text-to-speech.

Each app checks its own input as fal's pydantic models would (422 with `loc`), from the
field lists of docs/fal-protocol.md §10 and §12, independently of the proxy's table, so that a
wrong mapping fails here. Outputs link to real bytes this server keeps and serves at
`/_sim/files/{id}`: a valid PNG, a valid WAV. It also plays fal's storage API
(`{rest}/storage/upload/initiate`, then PUT to the signed URL; docs/fal-protocol.md §12.1).
"""

from __future__ import annotations

import base64
import functools
import io
import math
import re
import struct
import uuid
import wave
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from .apps import AppSpec
from .asgi import Receive, Scope, Send, read_body, send_bytes
from .common import (
    Call,
    check_auth,
    decode_body,
    parse_key,
    read_directives,
    send_scripted_error,
    start_timeout,
)
from .queue import _origin
from .state import Job, SimulatorState
from .text import Answer
from .validation import ChatInput, ErrorItem

REST_PREFIX = "/rest"
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
FILES_PREFIX = "/_sim/files/"
UPLOADS_PREFIX = "/_sim/uploads/"
# Test hooks among the files (not fal's): `_size/<n>` streams n bytes of a "PNG" without a
# Content-Length; `_redirect?to=<url>` answers 302 to it; `_hang` never answers. With the
# `output` directive, a test plays an app whose owner names any URL (fal/media_fetch.py's
# attacker).
SIZED_PREFIX = FILES_PREFIX + "_size/"
REDIRECT_PATH = FILES_PREFIX + "_redirect"
HANG_PATH = FILES_PREFIX + "_hang"
MAX_SIZED = 256 * 1024 * 1024

_FLUX_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
_IDEOGRAM_RATIOS = (
    "10:16",
    "16:10",
    "9:16",
    "16:9",
    "4:3",
    "3:4",
    "1:1",
    "1:3",
    "3:1",
    "3:2",
    "2:3",
)
_SIZE_ENUM = (
    "square_hd",
    "square",
    "portrait_4_3",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_16_9",
)
_KOKORO = (
    "af_heart", "af_alloy", "af_aoede", "af_bella", "af_jessica", "af_kore", "af_nicole",
    "af_nova", "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir",
    "am_liam", "am_michael", "am_onyx", "am_puck", "am_santa",
)  # fmt: skip


@dataclass(frozen=True)
class MediaSpec:
    """What one simulated media app requires and produces."""

    kind: str  # image | stt | tts
    size: str = ""  # image_size | aspect_ratio | ""
    ratios: tuple[str, ...] = ()
    image_field: str = ""  # image_url | image_urls | ""
    mask: bool = False
    strength: bool = False
    output_format: bool = True
    languages_key: str = "inferred_languages"
    # What an image app returns besides `images` (fal-js `types/endpoints.ts`: flux's outputs
    # echo `prompt`; Ideogram v2 gives `images` and `seed`; Recraft v3 `images` only).
    extras: tuple[str, ...] = ("seed", "prompt", "has_nsfw_concepts")
    # What one billable unit is (docs/fal-protocol.md §14.2): "megapixel" (each image rounded
    # up to a whole one), "image", "second" (of input audio), "kchar" (1000 characters, at
    # least 1). platform.PRICES prices the same units.
    billed_by: str = "image"
    # `language` when the input leaves it out: whisper detects (null), wizper assumes "en"
    # (docs/fal-protocol.md §12.3); `language: null` detects on both.
    default_language: str | None = None


APPS: dict[str, MediaSpec] = {
    "fal-ai/flux/dev": MediaSpec("image", size="image_size", billed_by="megapixel"),
    "fal-ai/flux/schnell": MediaSpec("image", size="image_size", billed_by="megapixel"),
    "fal-ai/flux-pro/v1.1": MediaSpec("image", size="image_size"),
    "fal-ai/flux-pro/v1.1-ultra": MediaSpec("image", size="aspect_ratio", ratios=_FLUX_RATIOS),
    "fal-ai/recraft/v3/text-to-image": MediaSpec(
        "image", size="image_size", output_format=False, extras=()
    ),
    "fal-ai/ideogram/v2": MediaSpec(
        "image", size="aspect_ratio", ratios=_IDEOGRAM_RATIOS, output_format=False, extras=("seed",)
    ),
    "fal-ai/flux-pro/kontext": MediaSpec(
        "image", size="aspect_ratio", ratios=_FLUX_RATIOS, image_field="image_url"
    ),
    "fal-ai/flux-pro/kontext/multi": MediaSpec(
        "image", size="aspect_ratio", ratios=_FLUX_RATIOS, image_field="image_urls"
    ),
    "fal-ai/flux/dev/image-to-image": MediaSpec(
        "image", image_field="image_url", strength=True, billed_by="megapixel"
    ),
    "fal-ai/flux-pro/v1/fill": MediaSpec(
        "image", image_field="image_url", mask=True, billed_by="megapixel"
    ),
    "fal-ai/whisper": MediaSpec("stt", billed_by="second"),
    "fal-ai/wizper": MediaSpec(
        "stt", languages_key="languages", default_language="en", billed_by="second"
    ),
    "fal-ai/kokoro/american-english": MediaSpec("tts", billed_by="kchar"),
}


@dataclass(frozen=True, slots=True)
class MediaAnswer(Answer):
    """A media app's output, kept in a queue job like a chat answer."""

    payload: dict[str, Any] = field(default_factory=dict)
    billable_units: float | None = None  # sent as `x-fal-billable-units` with the result

    def body(self) -> dict[str, Any]:
        return self.payload


def handles(path: str) -> bool:
    return path.startswith((FILES_PREFIX, UPLOADS_PREFIX, REST_PREFIX + "/"))


def is_media_app(app_id: str) -> bool:
    return app_id in APPS


# -- files and storage ---------------------------------------------------------------------


async def serve(state: SimulatorState, scope: Scope, receive: Receive, send: Send) -> None:
    raw = await read_body(receive)
    call = Call(scope, receive, send, str(uuid.uuid4()))
    path = call.path
    if path.startswith(SIZED_PREFIX) and call.method == "GET":
        call.log(state, "file_get", None, {"authorization": "authorization" in call.headers})
        await _send_sized(send, path[len(SIZED_PREFIX) :].partition(".")[0])
    elif path == HANG_PATH and call.method == "GET":
        call.log(state, "file_get", None, {"authorization": "authorization" in call.headers})
        while (await receive())["type"] != "http.disconnect":
            pass
    elif path == REDIRECT_PATH and call.method == "GET":
        call.log(state, "file_get", None, {"authorization": "authorization" in call.headers})
        target = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("to", [""])[0]
        await send_bytes(send, 302, b"", [(b"location", target.encode("latin-1"))], _OCTETS)
    elif path.startswith(FILES_PREFIX) and call.method == "GET":
        name = path[len(FILES_PREFIX) :]
        call.log(state, "file_get", None, {"authorization": "authorization" in call.headers})
        stored = state.files.get(name)
        if stored is None:
            await call.detail(404, "File not found")
            return
        data, content_type = stored
        await send_bytes(send, 200, data, [], (b"content-type", content_type.encode()))
    elif path == REST_PREFIX + "/storage/upload/initiate" and call.method == "POST":
        parse_key(call)
        body = decode_body(raw)
        call.log(state, "upload_initiate", None, body)
        if not await check_auth(call, state):
            return
        name = f"{uuid.uuid4().hex}-{body.get('file_name', 'upload.bin')}"
        origin = _origin(call)
        await call.json(
            200,
            {
                "upload_url": origin + UPLOADS_PREFIX + name,
                "file_url": origin + FILES_PREFIX + name,
            },
        )
    elif path.startswith(UPLOADS_PREFIX) and call.method == "PUT":
        name = path[len(UPLOADS_PREFIX) :]
        content_type = call.headers.get("content-type", "application/octet-stream")
        call.log(
            state,
            "upload_put",
            None,
            {"bytes": len(raw), "authorization": "authorization" in call.headers},
        )
        state.files[name] = (raw, content_type)
        status = state.config.upload_status
        if status in (204, 304) or status < 200:
            # No body, and no Content-Length, on a status that has none (RFC 9110 §8.6).
            await call.send({"type": "http.response.start", "status": status, "headers": []})
            await call.send({"type": "http.response.body", "body": b""})
        else:
            await call.json(status, {})
    else:
        await call.detail(404, "Not Found")


_OCTETS = (b"content-type", b"application/octet-stream")


async def _send_sized(send: Send, size_text: str) -> None:
    size = min(int(size_text), MAX_SIZED) if size_text.isdigit() else 0
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"image/png")],
    }
    await send(start)
    piece = b"\x89PNG\r\n\x1a\n" + bytes(1024 * 1024 - 8)
    while size > 0:
        await send({"type": "http.response.body", "body": piece[:size], "more_body": True})
        size -= len(piece)
    await send({"type": "http.response.body", "body": b""})


# -- queue submit --------------------------------------------------------------------------


async def submit(call: Call, state: SimulatorState, app_id: str) -> None:
    """A media app's queue submit: check the input, make the output, queue the job."""
    body = decode_body(await read_body(call.receive))
    parse_key(call)
    call.log(state, "submit", app_id, body if isinstance(body, dict) else None)
    if not await check_auth(call, state):
        return
    if not isinstance(body, dict):
        await call.json(
            422, {"detail": [{"loc": ["body"], "msg": "Field required", "type": "missing"}]}
        )
        return
    clean, directives = read_directives(body)
    if directives.status is not None:
        await send_scripted_error(call, directives)
        return
    spec = APPS[app_id]
    errors = _validate(spec, body, state)
    if errors:
        await call.json(422, {"detail": errors})
        return
    origin = _origin(call)
    payload = directives.output or _produce(
        spec, body, clean, state, origin, directives.speech_audio
    )
    latency_ms = state.config.latency_ms if directives.latency_ms is None else directives.latency_ms
    run_s = math.inf if directives.hang is not None else latency_ms / 1000
    inp = ChatInput(clean, None, "", False, None, None, None)
    answer = MediaAnswer("", None, None, payload, billable_units(spec, body, payload, state))
    rid = call.request_id
    queue_s = (directives.queue_ms or 0) / 1000
    job = Job(rid, _chat_spec(app_id), inp, answer, directives, queue_s, run_s)
    timeout = start_timeout(call)
    if timeout is not None and queue_s > timeout:
        job.expire_before_start(timeout)
    state.add_job(job)
    base = "/".join(app_id.split("/")[:2])  # fal drops the sub-path (docs/fal-protocol.md §1)
    url = f"{origin}{state.config.queue_prefix}/{base}/requests/{rid}"
    await call.json(
        200,
        {
            "request_id": rid,
            "response_url": url,
            "status_url": url + "/status",
            "cancel_url": url + "/cancel",
            "status": "IN_QUEUE",
            "queue_position": 0,
        },
    )


def _chat_spec(app_id: str) -> AppSpec:
    return AppSpec(app_id, router=False, vision=False, images_required=False)


# -- validation ----------------------------------------------------------------------------


def _error(name: str, kind: str, msg: str, value: Any = None) -> ErrorItem:
    item: ErrorItem = {"loc": ["body", name], "msg": msg, "type": kind}
    if kind != "missing":
        item["input"] = value
    return item


def _validate(spec: MediaSpec, body: dict[str, Any], state: SimulatorState) -> list[ErrorItem]:
    if spec.kind == "image":
        return _validate_image(spec, body, state)
    if spec.kind == "stt":
        errors = _file_errors("audio_url", body.get("audio_url"), state)
        if body.get("task", "transcribe") not in ("transcribe", "translate"):
            errors.append(
                _error(
                    "task", "enum", "Input should be 'transcribe' or 'translate'", body.get("task")
                )
            )
        language = body.get("language")
        if language is not None and not (isinstance(language, str) and _LANGUAGE.match(language)):
            msg = "Input should be 'af', 'am', 'ar', … or 'zh'"  # fal's enum, shortened
            errors.append(_error("language", "literal_error", msg, language))
        return errors
    errors = []
    if not isinstance(body.get("prompt"), str):
        errors.append(
            _error("prompt", "string_type", "Input should be a valid string", body.get("prompt"))
        )
    voice = body.get("voice", "af_heart")
    if voice not in _KOKORO:
        msg = "Input should be " + ", ".join(f"'{v}'" for v in _KOKORO)
        errors.append(_error("voice", "literal_error", msg, voice))
    speed = body.get("speed", 1.0)
    if not isinstance(speed, int | float) or not 0.1 <= speed <= 5.0:
        errors.append(
            _error("speed", "less_than_equal", "Input should be between 0.1 and 5", speed)
        )
    return errors


def _validate_image(
    spec: MediaSpec, body: dict[str, Any], state: SimulatorState
) -> list[ErrorItem]:
    errors: list[ErrorItem] = []
    if not isinstance(body.get("prompt"), str):
        errors.append(_error("prompt", "missing", "Field required"))
    n = body.get("num_images", 1)
    if not isinstance(n, int) or not 1 <= n <= 4:
        errors.append(_error("num_images", "less_than_equal", "Input should be between 1 and 4", n))
    size = body.get("image_size")
    if size is not None and not (
        size in _SIZE_ENUM
        or (
            isinstance(size, dict)
            and all(isinstance(size.get(k), int) for k in ("width", "height"))
        )
    ):
        errors.append(
            _error("image_size", "union_type", "Input should be an ImageSize or enum", size)
        )
    elif isinstance(size, dict) and not all(1 <= size[k] <= _MAX_SIDE for k in ("width", "height")):
        # The simulator's own bound (it draws real PNGs); fal's is not documented.
        errors.append(
            _error("image_size", "less_than_equal", f"Input should be at most {_MAX_SIDE}", size)
        )
    ratio = body.get("aspect_ratio")
    if ratio is not None and ratio not in spec.ratios:
        errors.append(_error("aspect_ratio", "enum", "Input should be one of the ratios", ratio))
    if body.get("output_format", "jpeg") not in ("jpeg", "png"):
        errors.append(
            _error(
                "output_format",
                "enum",
                "Input should be 'jpeg' or 'png'",
                body.get("output_format"),
            )
        )
    if spec.image_field == "image_url":
        errors += _file_errors("image_url", body.get("image_url"), state)
    elif spec.image_field == "image_urls":
        urls = body.get("image_urls")
        if not isinstance(urls, list) or not urls:
            errors.append(_error("image_urls", "missing", "Field required"))
        else:
            for url in urls:
                errors += _file_errors("image_urls", url, state)
    if spec.mask:
        errors += _file_errors("mask_url", body.get("mask_url"), state)
    strength = body.get("strength")
    if (
        spec.strength
        and strength is not None
        and not (isinstance(strength, int | float) and 0.01 <= strength <= 1)
    ):
        errors.append(
            _error("strength", "less_than_equal", "Input should be between 0.01 and 1", strength)
        )
    return errors


def _file_errors(name: str, value: Any, state: SimulatorState) -> list[ErrorItem]:
    if value is None:
        return [_error(name, "missing", "Field required")]
    if _file_bytes(value, state) is None:
        return [_error(name, "file_download_error", "Could not read the file", str(value)[:80])]
    return []


def _file_bytes(value: Any, state: SimulatorState) -> bytes | None:
    """A data URI's bytes, or a file this server keeps (an upload)."""
    if not isinstance(value, str):
        return None
    if value.startswith("data:"):
        head, _, data = value.partition(",")
        if not head.endswith(";base64"):
            return None
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            return None
    marker = value.find(FILES_PREFIX)
    if marker >= 0 and value.startswith("http"):
        stored = state.files.get(value[marker + len(FILES_PREFIX) :])
        return stored[0] if stored else None
    return None


# -- outputs -------------------------------------------------------------------------------


def _produce(
    spec: MediaSpec,
    body: dict[str, Any],
    prompt: str,
    state: SimulatorState,
    origin: str,
    speech_audio: str | None = None,
) -> dict[str, Any]:
    if spec.kind == "image":
        width, height = image_size(body, state)
        data = png(width, height)
        images = []
        for _ in range(body.get("num_images", 1)):
            name = f"{uuid.uuid4().hex}.png"
            state.files[name] = (data, "image/png")
            images.append(
                {
                    "url": origin + FILES_PREFIX + name,
                    "width": width,
                    "height": height,
                    "content_type": "image/png",
                }
            )
        extras = {
            "seed": 42,
            "prompt": body.get("prompt"),  # fal echoes the prompt it was given
            "has_nsfw_concepts": [False] * len(images),
        }
        return {"images": images, **{k: v for k, v in extras.items() if k in spec.extras}}
    if spec.kind == "stt":
        data = _file_bytes(body["audio_url"], state) or b""
        duration = _wav_seconds(data) or 1.0
        translated = body.get("task") == "translate"
        # An app told the language transcribes as that language; one asked to detect (null)
        # hears the language the WAV is tagged with (`spoken_language`), else English.
        language = body.get("language", spec.default_language)
        heard = language or spoken_language(data) or "en"
        half = round(duration / 2, 3)
        first = " Simulated translation" if translated else " Simulated transcript"
        second = f" of {duration:.1f} seconds."
        return {
            "text": (first + second).strip(),
            "chunks": [
                {"timestamp": [0.0, half], "text": first},
                {"timestamp": [half, None], "text": second},  # fal may leave the last end open
            ],
            spec.languages_key: [heard],
        }
    name = f"{uuid.uuid4().hex}.wav"
    audio = speech_file(min(0.02 * len(prompt), 5.0), speech_audio)
    state.files[name] = (audio, "audio/wav")
    return {
        "audio": {
            "url": origin + FILES_PREFIX + name,
            "content_type": "audio/wav",
            "file_size": len(audio),
        }
    }


def billable_units(
    spec: MediaSpec, body: dict[str, Any], payload: dict[str, Any], state: SimulatorState
) -> float:
    """How many of the app's priced units the answer used (what a fal app would report)."""
    if spec.billed_by == "megapixel":
        # An `output` directive's images may carry no size: a megapixel each.
        images = [i for i in payload.get("images", []) if isinstance(i, dict)]
        return float(
            sum(
                max(1, math.ceil(i.get("width", 1) * i.get("height", 1) / (1024 * 1024)))
                for i in images
            )
        )
    if spec.billed_by == "second":
        return round(_wav_seconds(_file_bytes(body["audio_url"], state) or b"") or 1.0, 3)
    if spec.billed_by == "kchar":
        return max(1.0, len(str(body.get("prompt", ""))) / 1000)
    return float(len(payload.get("images", [])) or 1)


# fal's `image_size` presets (fal-js `types/endpoints.ts`, `ImageSize` enum; the pixel sizes
# are fal's model pages' and unverified), and the default of apps that take `image_size`.
SIZE_PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
_DEFAULT_SIZE = SIZE_PRESETS["landscape_4_3"]
_MAX_SIDE = 4096
_RATIO_PIXELS = 1024 * 1024  # an `aspect_ratio` app's output: about a megapixel (simulated)


def image_size(body: dict[str, Any], state: SimulatorState) -> tuple[int, int]:
    """The size of the images an app makes: `image_size` as asked, `aspect_ratio` at about a
    megapixel, else the input image's own size (edits), else the default preset."""
    size = body.get("image_size")
    if isinstance(size, dict):
        return int(size["width"]), int(size["height"])
    if isinstance(size, str):
        return SIZE_PRESETS[size]
    ratio = body.get("aspect_ratio")
    if isinstance(ratio, str):
        across, _, down = ratio.partition(":")
        scale = math.sqrt(_RATIO_PIXELS / (int(across) * int(down)))
        return _multiple_of_16(int(across) * scale), _multiple_of_16(int(down) * scale)
    source = body.get("image_url") or next(iter(body.get("image_urls") or ()), None)
    found = png_size(_file_bytes(source, state) or b"") if source else None
    return found or _DEFAULT_SIZE


def _multiple_of_16(value: float) -> int:
    return max(16, round(value / 16) * 16)


def png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's width and height from its IHDR chunk; None for anything else."""
    if len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@functools.lru_cache(maxsize=16)
def png(width: int, height: int) -> bytes:
    """A valid RGB PNG of one colour, compressed row by row (a 4096² image is 48 MiB raw)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + b"\x20\x80\xe0" * width
    packer = zlib.compressobj()
    parts = [packer.compress(row) for _ in range(height)]
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def wav(seconds: float, rate: int = 24000) -> bytes:
    """A valid 16-bit mono WAV: a quiet 440 Hz tone."""
    frames = int(seconds * rate)
    samples = (int(3000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(frames))
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return out.getvalue()


def spoken_language(data: bytes) -> str | None:
    """What a simulated model hears: the language code of a WAV's RIFF `LIST`/`INFO` `ILNG`
    entry (tests/support/media.py writes one), as a real model would hear the speech."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(data):
        kind, size = (
            data[offset : offset + 4],
            int.from_bytes(data[offset + 4 : offset + 8], "little"),
        )
        body = data[offset + 8 : offset + 8 + size]
        if kind == b"LIST" and body[:4] == b"INFO":
            inner = 4
            while inner + 8 <= len(body):
                tag = body[inner : inner + 4]
                length = int.from_bytes(body[inner + 4 : inner + 8], "little")
                if tag == b"ILNG":
                    value = body[inner + 8 : inner + 8 + length].rstrip(b"\0")
                    return value.decode("ascii", "replace") or None
                inner += 8 + length + length % 2
        offset += 8 + size + size % 2
    return None


def speech_file(seconds: float, kind: str | None) -> bytes:
    """Kokoro's 24 kHz 16-bit mono WAV, or a variant a directive asks for (`speech_audio`):
    what another app, or Kokoro itself, might produce (its exact format is unverified,
    docs/fal-protocol.md §12.4)."""
    if kind == "not_wav":
        return b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8
    if kind not in ("float", "stereo", "streamed"):
        return wav(seconds)
    rate, frames = 24000, int(seconds * 24000)
    tone = [0.1 * math.sin(2 * math.pi * 440 * i / rate) for i in range(frames)]
    if kind == "float":
        tag, channels, bits, samples = 3, 1, 32, struct.pack(f"<{frames}f", *tone)
    else:
        channels = 2 if kind == "stereo" else 1
        pcm = [int(30000 * t) for t in tone for _ in range(channels)]
        tag, bits, samples = 1, 16, struct.pack(f"<{len(pcm)}h", *pcm)
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    data_size = 0xFFFFFFFF if kind == "streamed" else len(samples)
    riff_size = 0xFFFFFFFF if kind == "streamed" else 36 + len(samples)
    return (
        b"RIFF" + struct.pack("<I", riff_size) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", data_size) + samples
    )  # fmt: skip


def _wav_seconds(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            seconds: float = reader.getnframes() / reader.getframerate()
            return seconds
    except (wave.Error, EOFError, ZeroDivisionError):
        return None
