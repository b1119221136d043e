"""OpenAI's video parameters -> a fal video app's input; fal's status, output and errors ->
OpenAI's video fields.

Pure: the app's row (`fal/video_apps.py`) says which fields exist and what they allow
(docs/fal-protocol.md §15); nothing here does I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..fal.errors import FalError, FalStatusError, FalTimeout
from ..fal.video_apps import ALL_RATIOS, ALL_RESOLUTIONS, ALL_SECONDS, VideoApp
from ..openai.errors import invalid_request, unsupported

_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
# How far (on a log scale) a size may be from a ratio and still be it: 1792x1024 is 16:9.
_RATIO_SLACK = 0.05
# The shorter side's upper bound for each resolution tier (1024 is Sora's "1080p").
_TIERS = ((540, "480p"), (800, "720p"), (1200, "1080p"), (2400, "4k"))
# (ratio, resolution) -> the size the video object reports; Sora's four sizes where they fit.
_REPORTED = {
    ("16:9", "480p"): "854x480",
    ("16:9", "720p"): "1280x720",
    ("16:9", "1080p"): "1792x1024",
    ("16:9", "4k"): "3840x2160",
    ("9:16", "480p"): "480x854",
    ("9:16", "720p"): "720x1280",
    ("9:16", "1080p"): "1024x1792",
    ("9:16", "4k"): "2160x3840",
    ("1:1", "480p"): "480x480",
    ("1:1", "720p"): "720x720",
    ("1:1", "1080p"): "1080x1080",
    ("1:1", "4k"): "2160x2160",
}
AUTO = "auto"  # the app decides (from the input image, or its own default)
_BOOL_FIELDS = frozenset(
    {"generate_audio", "auto_fix", "enable_prompt_expansion", "enable_safety_checker"}
)
_INT_FIELDS = frozenset({"seed"})
_FLOAT_FIELDS = frozenset({"cfg_scale"})
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class VideoAsk:
    """What is asked of fal, and how the video object reports it."""

    fal_input: dict[str, Any]
    seconds: str
    size: str


def parse_seconds(raw: str | int | None) -> int | None:
    """OpenAI's `seconds` ("4", "8", "12"), or a duration some app offers; else a 400."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip().removesuffix("s")
    if not text.isdigit() or int(text) not in ALL_SECONDS:
        allowed = ", ".join(f"'{s}'" for s in ALL_SECONDS)
        raise invalid_request(
            f"Invalid value for 'seconds': {str(raw)[:40]!r}. No video app makes that length; "
            f"supported values are: {allowed}.",
            param="seconds",
            code="invalid_value",
        )
    return int(text)


def parse_size(raw: str | None) -> tuple[str, str] | None:
    """`1280x720` -> ("16:9", "720p"); a shape or a size no video app makes is a 400."""
    if raw is None or raw == "":
        return None
    match = _SIZE.match(raw.strip())
    if not match:
        raise invalid_request(
            f"Invalid value for 'size': {raw[:40]!r}. Expected 'WIDTHxHEIGHT', e.g. '1280x720'.",
            param="size",
            code="invalid_value",
        )
    width, height = int(match[1]), int(match[2])
    ratio = _ratio_of(width, height)
    tier = next((name for bound, name in _TIERS if min(width, height) <= bound), None)
    if ratio is None or tier is None or min(width, height) < 240:
        raise invalid_request(
            f"Invalid value for 'size': {raw!r}. Video apps make 16:9, 9:16 or 1:1 at 480p to "
            "4k, e.g. '1280x720', '720x1280', '1792x1024', '1024x1792'.",
            param="size",
            code="invalid_value",
        )
    return ratio, tier


def _ratio_of(width: int, height: int) -> str | None:
    target = math.log(width / height)
    for ratio in ALL_RATIOS:
        w, h = ratio.split(":")
        if abs(math.log(int(w) / int(h)) - target) <= _RATIO_SLACK:
            return ratio
    return None


def build_video_input(
    app: VideoApp,
    prompt: str,
    seconds: int | None,
    size: tuple[str, str] | None,
    extras: dict[str, Any],
    *,
    generic: bool = False,
) -> VideoAsk:
    """The fal input for `app` (the input image or video is added by the caller)."""
    fal: dict[str, Any] = {"prompt": prompt}
    if app.max_prompt is not None and len(prompt) > app.max_prompt:
        raise invalid_request(
            f"Invalid 'prompt': {app.app_id} takes at most {app.max_prompt} characters.",
            param="prompt",
            code="string_above_max_length",
        )
    if generic:
        return _generic(app, fal, seconds, size, extras)
    for name, value in extras.items():
        if name not in app.extras and name not in _mapped_fields(app):
            raise unsupported(name, f"is not an input of {app.app_id}.")
        fal[name] = value
    duration = _duration(app, seconds, fal)
    ratio, tier = _size(app, size, fal)
    return VideoAsk(fal, str(duration), _reported_size(ratio, tier))


def _mapped_fields(app: VideoApp) -> set[str]:
    fields = {"duration"}
    if app.aspect_ratios:
        fields.add("aspect_ratio")
    if app.resolutions:
        fields.add("resolution")
    return fields


def _duration(app: VideoApp, seconds: int | None, fal: dict[str, Any]) -> int:
    """Sets `duration` unless the client named it; the seconds asked."""
    if "duration" in fal:  # the client's own value wins; the app checks it
        text = str(fal["duration"]).strip().removesuffix("s")
        return int(text) if text.isdigit() else app.default_duration
    if seconds is None:
        return app.default_duration
    chosen = app.nearest_duration(seconds)
    fal["duration"] = app.duration_value(chosen)
    return chosen


def _size(app: VideoApp, size: tuple[str, str] | None, fal: dict[str, Any]) -> tuple[str, str]:
    """Sets `aspect_ratio` and `resolution` where the app has them; the (ratio, tier) asked."""
    ratio = str(fal.get("aspect_ratio", app.default_aspect or AUTO))
    tier = str(fal.get("resolution", app.default_resolution))
    if size is None:
        return ratio, tier or "720p"
    wanted_ratio, wanted_tier = size
    if app.aspect_ratios and "aspect_ratio" not in fal:
        if wanted_ratio not in app.aspect_ratios:
            made = " or ".join(r for r in app.aspect_ratios if r != AUTO)
            raise invalid_request(
                f"Invalid value for 'size': {app.app_id} makes {made} videos, not {wanted_ratio}.",
                param="size",
                code="invalid_value",
            )
        fal["aspect_ratio"] = ratio = wanted_ratio
    if app.resolutions and "resolution" not in fal:
        fal["resolution"] = tier = _nearest_tier(wanted_tier, app.resolutions)
    elif not app.resolutions:
        tier = wanted_tier  # the app has one resolution of its own: the client's stands
    if not app.aspect_ratios:
        ratio = AUTO  # the input image decides
    return ratio, tier


def _nearest_tier(wanted: str, offered: tuple[str, ...]) -> str:
    index = ALL_RESOLUTIONS.index(wanted)
    return min(offered, key=lambda t: (abs(ALL_RESOLUTIONS.index(t) - index), -len(t)))


def _reported_size(ratio: str, tier: str) -> str:
    return _REPORTED.get((ratio, tier), AUTO)


def _generic(
    app: VideoApp,
    fal: dict[str, Any],
    seconds: int | None,
    size: tuple[str, str] | None,
    extras: dict[str, Any],
) -> VideoAsk:
    """An app outside the table: `prompt` and the client's own fields, nothing mapped."""
    for name, given in (("seconds", seconds), ("size", size)):
        if given is not None:
            raise unsupported(
                name,
                f"cannot be mapped for {app.app_id}: the proxy does not know its inputs. "
                "Send the app's own fields instead (e.g. `duration`, `aspect_ratio`).",
            )
    fal.update(extras)
    text = str(fal.get("duration", "")).strip().removesuffix("s")
    reported_seconds = text if text.isdigit() else AUTO
    ratio, tier = str(fal.get("aspect_ratio", AUTO)), str(fal.get("resolution", "720p"))
    return VideoAsk(fal, reported_seconds, _reported_size(ratio, tier))


def coerce_form_field(name: str, value: str) -> Any:
    """A multipart text field as the JSON type the apps take (a form has only strings)."""
    if name in _BOOL_FIELDS:
        lowered = value.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise invalid_request(
            f"Invalid '{name}': expected a boolean, got {value[:40]!r}.", name, "invalid_type"
        )
    kind: type[int] | type[float] | None = (
        int if name in _INT_FIELDS else float if name in _FLOAT_FIELDS else None
    )
    if kind is None:
        return value
    try:
        return kind(value)
    except ValueError:
        raise invalid_request(
            f"Invalid '{name}': expected a number, got {value[:40]!r}.", name, "invalid_type"
        ) from None


# -- fal -> OpenAI ------------------------------------------------------------------------


def progress_estimate(elapsed: float, typical_seconds: float) -> int:
    """fal gives no percentage (docs/fal-protocol.md §15.3): an estimate from the time spent,
    rising with it and never reaching 100 before the job is done."""
    if elapsed <= 0 or typical_seconds <= 0:
        return 0
    return min(99, int(100 * (1 - math.exp(-elapsed / typical_seconds))))


def output_urls(output: dict[str, Any]) -> dict[str, str]:
    """The variants a video app's output links to: `video`, and `thumbnail` or `spritesheet`
    where the app gives them (none of the table's apps does, docs/fal-protocol.md §15.2)."""
    urls: dict[str, str] = {}
    for variant in ("video", "thumbnail", "spritesheet"):
        value = output.get(variant)
        url = value.get("url") if isinstance(value, dict) else output.get(f"{variant}_url")
        if isinstance(url, str) and url:
            urls[variant] = url
    return urls


def video_error(exc: FalError) -> dict[str, str]:
    """A failed job's `error: {code, message}`: the app's own message where it gave one."""
    if isinstance(exc, FalStatusError):
        if exc.status == 422:
            return {"code": "invalid_input", "message": f"fal rejected the input: {exc.message}"}
        if exc.error_type == "content_policy_violation":
            return {"code": "moderation_blocked", "message": exc.message}
        if exc.status in (499,) or exc.error_type in ("client_cancelled", "client_disconnected"):
            return {"code": "cancelled", "message": exc.message}
        if exc.status == 504 or exc.error_type in ("request_timeout", "startup_timeout"):
            return {"code": "timeout", "message": f"fal timed out: {exc.message}"}
        code = exc.error_type or "video_generation_failed"
        return {"code": code, "message": f"fal failed: {exc.message}"}
    if isinstance(exc, FalTimeout):
        return {"code": "timeout", "message": str(exc)}
    return {"code": "video_generation_failed", "message": f"fal failed: {exc.kind}"}
