"""fal's video apps as the simulator plays them: Veo 3.1 (and fast, image-to-video, extend),
Kling 2.5 Turbo Pro and Wan 2.5, from their documented schemas (docs/fal-protocol.md §15.1),
checked here on the simulator's own knowledge, independently of the proxy's table.

As fal's queue does, a submit is accepted whatever its input; the runner's 422 (pydantic's
`loc`/`msg`/`type`) becomes the result of a request that failed (docs/fal-protocol.md §3.3).
A job takes a while (`video_queue_ms` queued, then `video_ms` running, or the prompt's
`queue_ms`/`latency_ms`), so that IN_QUEUE and IN_PROGRESS are both seen. The output links to
a real MP4 (64x36, 8 frames, H.264) kept at `/_sim/files/…`. None of these apps gives a
thumbnail (docs/fal-protocol.md §15.2); `[[sim {"thumbnail": true}]]` adds one, for clients of
apps that might.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .apps import AppSpec
from .asgi import read_body
from .common import Call, check_auth, decode_body, parse_key, read_directives, send_scripted_error
from .media import FILES_PREFIX, MediaAnswer, _error, _file_bytes, png
from .queue import _origin
from .state import Job, SimulatorState
from .validation import ChatInput, ErrorItem

SAMPLE_VIDEO = (Path(__file__).parent / "data" / "sample.mp4").read_bytes()
SAMPLE_WIDTH, SAMPLE_HEIGHT, SAMPLE_FRAMES, SAMPLE_FPS = 64, 36, 8, 8

_VEO_TEXT = {
    "negative_prompt": str, "seed": int, "generate_audio": bool, "auto_fix": bool,
    "safety_tolerance": ("1", "2", "3", "4", "5", "6"),
}  # fmt: skip
_KLING_TEXT = {"negative_prompt": str, "cfg_scale": float}
_WAN_TEXT = {
    "negative_prompt": str, "seed": int, "enable_prompt_expansion": bool,
    "enable_safety_checker": bool, "audio_url": str,
}  # fmt: skip


@dataclass(frozen=True)
class VideoSpec:
    """One simulated video app: its enums and its fields (pydantic ignores unknown ones)."""

    durations: tuple[str, ...] | None  # None: a free string
    aspect_ratios: tuple[str, ...] = ()
    resolutions: tuple[str, ...] | None = ()  # None: a free string; empty: no field
    files: tuple[str, ...] = ()  # required file fields
    optional: dict[str, Any] = field(default_factory=dict)  # name -> type or enum
    max_prompt: int | None = None
    wan_output: bool = False


_VEO_T2V = VideoSpec(("4s", "6s", "8s"), ("16:9", "9:16"), ("720p", "1080p", "4k"), (), _VEO_TEXT)
_VEO_I2V = VideoSpec(
    ("4s", "6s", "8s"), ("auto", "16:9", "9:16"), ("720p", "1080p", "4k"), ("image_url",),
    _VEO_TEXT,
)  # fmt: skip
_VEO_EXTEND = VideoSpec(None, ("auto", "16:9", "9:16"), None, ("video_url",), _VEO_TEXT)
_KLING = "fal-ai/kling-video/v2.5-turbo/pro"
_WAN = "fal-ai/wan-25-preview"

APPS: dict[str, VideoSpec] = {
    "fal-ai/veo3.1": _VEO_T2V,
    "fal-ai/veo3.1/fast": _VEO_T2V,
    "fal-ai/veo3.1/image-to-video": _VEO_I2V,
    "fal-ai/veo3.1/fast/image-to-video": _VEO_I2V,
    "fal-ai/veo3.1/extend-video": _VEO_EXTEND,
    "fal-ai/veo3.1/fast/extend-video": _VEO_EXTEND,
    f"{_KLING}/text-to-video": VideoSpec(("5", "10"), ("16:9", "9:16", "1:1"), (), (), _KLING_TEXT),
    f"{_KLING}/image-to-video": VideoSpec(
        ("5", "10"), (), (), ("image_url",), {**_KLING_TEXT, "tail_image_url": str}
    ),
    f"{_WAN}/text-to-video": VideoSpec(
        ("5", "10"), ("16:9", "9:16", "1:1"), ("480p", "720p", "1080p"), (), _WAN_TEXT, 1500,
        wan_output=True,
    ),
    f"{_WAN}/image-to-video": VideoSpec(
        ("5", "10"), (), ("480p", "720p", "1080p"), ("image_url",), _WAN_TEXT, 1500,
        wan_output=True,
    ),
}  # fmt: skip
BASES = frozenset({"fal-ai/veo3.1", "fal-ai/kling-video", "fal-ai/wan-25-preview"})


def is_video_app(app_id: str) -> bool:
    return app_id in APPS


async def submit(call: Call, state: SimulatorState, app_id: str) -> None:
    body = decode_body(await read_body(call.receive))
    parse_key(call)
    call.log(state, "submit", app_id, body if isinstance(body, dict) else None)
    if not await check_auth(call, state):
        return
    if not isinstance(body, dict):
        body = {}
    clean, directives = read_directives(body)
    if directives.status is not None:  # refused before the queue takes it (429, 5xx, …)
        await send_scripted_error(call, directives)
        return
    spec = APPS[app_id]
    errors = validate(spec, body, state)
    origin = _origin(call)
    config = state.config
    queue_ms = config.video_queue_ms if directives.queue_ms is None else directives.queue_ms
    run_ms = config.video_ms if directives.latency_ms is None else directives.latency_ms
    run_s = math.inf if directives.hang is not None else run_ms / 1000
    rid = call.request_id
    app = AppSpec(app_id, router=False, vision=False, images_required=False)
    if errors:
        job = Job(rid, app, None, None, directives, queue_ms / 1000, run_s)
        job.fail(422, errors, "Unprocessable Entity", None)
    else:
        payload = _produce(spec, body, clean, state, origin, thumbnail=directives.thumbnail)
        inp = ChatInput(clean, None, "", False, None, None, None)
        job = Job(rid, app, inp, MediaAnswer("", None, None, payload), directives,
                  queue_ms / 1000, run_s)  # fmt: skip
    state.add_job(job)
    base = "/".join(app_id.split("/")[:2])  # fal drops the sub-path (docs/fal-protocol.md §1)
    url = f"{origin}{config.queue_prefix}/{base}/requests/{rid}"
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


def validate(spec: VideoSpec, body: dict[str, Any], state: SimulatorState) -> list[ErrorItem]:
    errors: list[ErrorItem] = []
    prompt = body.get("prompt")
    if prompt is None:
        errors.append(_error("prompt", "missing", "Field required"))
    elif not isinstance(prompt, str):
        errors.append(_error("prompt", "string_type", "Input should be a valid string", prompt))
    elif spec.max_prompt is not None and len(prompt) > spec.max_prompt:
        msg = f"String should have at most {spec.max_prompt} characters"
        errors.append(_error("prompt", "string_too_long", msg, prompt[:80]))
    _enum(errors, body, "duration", spec.durations)
    if spec.aspect_ratios:
        _enum(errors, body, "aspect_ratio", spec.aspect_ratios)
    if spec.resolutions:
        _enum(errors, body, "resolution", spec.resolutions)
    elif spec.resolutions is None:
        _enum(errors, body, "resolution", None)
    for name in spec.files:
        value = body.get(name)
        if value is None:
            errors.append(_error(name, "missing", "Field required"))
        elif _file_bytes(value, state) is None and not _public_url(value):
            errors.append(
                _error(name, "file_download_error", "Could not read the file", str(value)[:80])
            )
    for name, kind in spec.optional.items():
        if name in body:
            _typed(errors, name, body[name], kind)
    return errors


def _enum(errors: list[ErrorItem], body: dict[str, Any], name: str, allowed: Any) -> None:
    if name not in body:
        return
    value = body[name]
    if allowed is None:
        if not isinstance(value, str):
            errors.append(_error(name, "string_type", "Input should be a valid string", value))
    elif value not in allowed:
        msg = "Input should be " + " or ".join(f"'{v}'" for v in allowed)
        errors.append(_error(name, "literal_error", msg, value))


def _typed(errors: list[ErrorItem], name: str, value: Any, kind: Any) -> None:
    if isinstance(kind, tuple):
        _enum(errors, {name: value}, name, kind)
    elif kind is bool and not isinstance(value, bool):
        errors.append(_error(name, "bool_type", "Input should be a valid boolean", value))
    elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        errors.append(_error(name, "int_type", "Input should be a valid integer", value))
    elif kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        errors.append(_error(name, "float_type", "Input should be a valid number", value))
    elif kind is str and not isinstance(value, str):
        errors.append(_error(name, "string_type", "Input should be a valid string", value))


def _public_url(value: Any) -> bool:
    """A URL somewhere else (fal would download it; the simulator takes it on trust)."""
    return isinstance(value, str) and value.startswith("https://") and FILES_PREFIX not in value


def _produce(
    spec: VideoSpec,
    body: dict[str, Any],
    prompt: str,
    state: SimulatorState,
    origin: str,
    *,
    thumbnail: bool,
) -> dict[str, Any]:
    name = f"{uuid.uuid4().hex}.mp4"
    state.files[name] = (SAMPLE_VIDEO, "video/mp4")
    video: dict[str, Any] = {
        "url": origin + FILES_PREFIX + name,
        "content_type": "video/mp4",
        "file_name": "output.mp4",
        "file_size": len(SAMPLE_VIDEO),
    }
    output: dict[str, Any] = {"video": video}
    if spec.wan_output:  # Wan's VideoFile and its seed (docs/fal-protocol.md §15.2)
        video.update(
            width=SAMPLE_WIDTH,
            height=SAMPLE_HEIGHT,
            fps=SAMPLE_FPS,
            duration=SAMPLE_FRAMES / SAMPLE_FPS,
            num_frames=SAMPLE_FRAMES,
        )
        output["seed"] = body.get("seed", 42)
        if body.get("enable_prompt_expansion", True):
            output["actual_prompt"] = prompt + " (expanded)"
    if thumbnail:
        thumb = f"{uuid.uuid4().hex}.png"
        state.files[thumb] = (png(SAMPLE_WIDTH, SAMPLE_HEIGHT), "image/png")
        output["thumbnail"] = {"url": origin + FILES_PREFIX + thumb, "content_type": "image/png"}
    return output
