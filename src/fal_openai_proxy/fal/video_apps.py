"""THE table of fal's video apps: what each takes and gives. Adding an app is a row here
(plus a test); every other module reads the row instead of naming app ids.

Field names, enums and defaults are from fal-js `types/endpoints.ts`, as summed up in
docs/fal-protocol.md §15.1 and §15.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text-to-video", "image-to-video", "extend"]

VEO_RATIOS = ("16:9", "9:16")
WIDE_RATIOS = ("16:9", "9:16", "1:1")
# Extra fields a client may send that every app of a family knows (docs/fal-protocol.md §15.1).
_VEO_EXTRAS = frozenset(
    {"negative_prompt", "seed", "generate_audio", "auto_fix", "safety_tolerance"}
)
_KLING_EXTRAS = frozenset({"negative_prompt", "cfg_scale"})
_WAN_EXTRAS = frozenset(
    {"negative_prompt", "seed", "enable_prompt_expansion", "enable_safety_checker", "audio_url"}
)
# The fields the OpenAI parameters map onto; a client may also name them directly.
MAPPED_FIELDS = frozenset({"duration", "aspect_ratio", "resolution"})


@dataclass(frozen=True)
class VideoApp:
    """One fal video app and how OpenAI's parameters reach it."""

    app_id: str
    kind: Kind
    durations: tuple[int, ...]  # seconds the app allows (its `duration` enum)
    duration_unit: str  # "s" for Veo ("8s"), "" for Kling and Wan ("5")
    default_duration: int
    aspect_ratios: tuple[str, ...] = ()  # empty: no `aspect_ratio` field
    default_aspect: str = ""  # "auto": the input image decides
    resolutions: tuple[str, ...] = ()  # empty: no `resolution` field
    default_resolution: str = ""
    image_field: str = ""  # the input image's field on an image-to-video app
    video_field: str = ""  # the input video's field on an extend app
    image_app: str = ""  # the image-to-video app of the same model (with `input_reference`)
    remix_app: str = ""  # the app that remixes (extends) this app's videos
    extras: frozenset[str] = frozenset()  # optional fields passed through as given
    max_prompt: int | None = None  # characters, where the app documents a limit
    # A typical run in seconds (the proxy's own guess, not fal's): the pace of `progress`.
    typical_seconds: float = 60.0

    def duration_value(self, seconds: int) -> str:
        return f"{seconds}{self.duration_unit}"

    def nearest_duration(self, seconds: int) -> int:
        """The allowed duration closest to `seconds` (the longer one on a tie)."""
        return min(self.durations, key=lambda d: (abs(d - seconds), -d))


def _veo(app_id: str, *, image: bool, fast: bool) -> VideoApp:
    base = "fal-ai/veo3.1/fast" if fast else "fal-ai/veo3.1"
    return VideoApp(
        f"{base}/image-to-video" if image else base,
        "image-to-video" if image else "text-to-video",
        durations=(4, 6, 8),
        duration_unit="s",
        default_duration=8,
        aspect_ratios=("auto", *VEO_RATIOS) if image else VEO_RATIOS,
        default_aspect="auto" if image else "16:9",
        resolutions=("720p", "1080p", "4k"),
        default_resolution="720p",
        image_field="image_url" if image else "",
        image_app="" if image else f"{base}/image-to-video",
        remix_app=f"{base}/extend-video",
        extras=_VEO_EXTRAS,
        typical_seconds=60.0 if fast else 120.0,
    )


def _veo_extend(fast: bool) -> VideoApp:
    base = "fal-ai/veo3.1/fast" if fast else "fal-ai/veo3.1"
    # `duration` and `resolution` are free strings here (default "7s", "720p").
    return VideoApp(
        f"{base}/extend-video",
        "extend",
        durations=(7,),
        duration_unit="s",
        default_duration=7,
        aspect_ratios=("auto", *VEO_RATIOS),
        default_aspect="auto",
        resolutions=("720p", "1080p"),
        default_resolution="720p",
        video_field="video_url",
        extras=_VEO_EXTRAS,
        typical_seconds=60.0 if fast else 120.0,
    )


_KLING = "fal-ai/kling-video/v2.5-turbo/pro"
_WAN = "fal-ai/wan-25-preview"

VIDEO_APPS: dict[str, VideoApp] = {
    app.app_id: app
    for app in (
        _veo("fal-ai/veo3.1", image=False, fast=False),
        _veo("fal-ai/veo3.1", image=True, fast=False),
        _veo("fal-ai/veo3.1/fast", image=False, fast=True),
        _veo("fal-ai/veo3.1/fast", image=True, fast=True),
        _veo_extend(fast=False),
        _veo_extend(fast=True),
        VideoApp(
            f"{_KLING}/text-to-video", "text-to-video", durations=(5, 10), duration_unit="",
            default_duration=5, aspect_ratios=WIDE_RATIOS, default_aspect="16:9",
            image_app=f"{_KLING}/image-to-video", extras=_KLING_EXTRAS, typical_seconds=90.0,
        ),
        VideoApp(
            f"{_KLING}/image-to-video", "image-to-video", durations=(5, 10), duration_unit="",
            default_duration=5, image_field="image_url",
            extras=_KLING_EXTRAS | {"tail_image_url"}, typical_seconds=90.0,
        ),
        VideoApp(
            f"{_WAN}/text-to-video", "text-to-video", durations=(5, 10), duration_unit="",
            default_duration=5, aspect_ratios=WIDE_RATIOS, default_aspect="16:9",
            resolutions=("480p", "720p", "1080p"), default_resolution="1080p",
            image_app=f"{_WAN}/image-to-video", extras=_WAN_EXTRAS, max_prompt=1500,
            typical_seconds=120.0,
        ),
        VideoApp(
            f"{_WAN}/image-to-video", "image-to-video", durations=(5, 10), duration_unit="",
            default_duration=5, resolutions=("480p", "720p", "1080p"),
            default_resolution="1080p", image_field="image_url", extras=_WAN_EXTRAS,
            max_prompt=1500, typical_seconds=120.0,
        ),
    )
}  # fmt: skip

# OpenAI's video model ids (openai-python `types/video_model.py`): each stands for
# FAL_VIDEO_APP.
SORA_MODELS = frozenset(
    {"sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08"}
)
# Every duration some app of the table offers, and OpenAI's own (`types/video_seconds.py`).
OPENAI_SECONDS = (4, 8, 12)
ALL_SECONDS = tuple(
    sorted(
        {
            *OPENAI_SECONDS,
            *(d for a in VIDEO_APPS.values() if a.kind != "extend" for d in a.durations),
        }
    )
)
ALL_RATIOS = WIDE_RATIOS
ALL_RESOLUTIONS = ("480p", "720p", "1080p", "4k")


def generic_video_app(app_id: str, image: bool) -> VideoApp:
    """Any other fal app: `prompt` (and `image_url`), and what the client names itself."""
    return VideoApp(
        app_id,
        "image-to-video" if image else "text-to-video",
        durations=(),
        duration_unit="",
        default_duration=0,
        image_field="image_url" if image else "",
    )


def video_model_ids() -> list[tuple[str, str]]:
    """Every video id /v1/models lists, with its kind: the apps, then OpenAI's ids."""
    listed = [(a.app_id, a.kind) for a in VIDEO_APPS.values()]
    return [*listed, *((m, "text-to-video") for m in sorted(SORA_MODELS))]
