"""THE table of fal's media apps: what each takes and gives. Adding an app is a row here
(plus a test); every other module reads the row instead of naming app ids.

Field names, enums and ranges are from fal-js `types/endpoints.ts`, as summed up in
docs/fal-protocol.md §10 (image apps), §12.2 (edit apps), §12.3 (speech-to-text) and §12.4
(text-to-speech).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal["image", "edit", "stt", "tts"]
SizeField = Literal["image_size", "aspect_ratio", "none"]

# flux-pro v1.1-ultra and kontext (docs/fal-protocol.md §10, §12.2).
FLUX_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
IDEOGRAM_RATIOS = (
    "10:16", "16:10", "9:16", "16:9", "4:3", "3:4", "1:1", "1:3", "3:1", "3:2", "2:3",
)  # fmt: skip
# Kokoro American English's voice enum (docs/fal-protocol.md §12.4).
KOKORO_US_VOICES = (
    "af_heart", "af_alloy", "af_aoede", "af_bella", "af_jessica", "af_kore", "af_nicole",
    "af_nova", "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir",
    "am_liam", "am_michael", "am_onyx", "am_puck", "am_santa",
)  # fmt: skip
# Every voice OpenAI names (the openai SDK's `voice` literal) -> a Kokoro voice: the four
# Kokoro has under the same name, the others by the voice's character (female or male,
# warm or bright); Kokoro American English has no British voice for `fable`.
KOKORO_OPENAI_VOICES = {
    "alloy": "af_alloy",
    "ash": "am_michael",
    "ballad": "am_fenrir",
    "cedar": "am_eric",
    "coral": "af_heart",
    "echo": "am_echo",
    "fable": "am_puck",
    "marin": "af_kore",
    "nova": "af_nova",
    "onyx": "am_onyx",
    "sage": "af_sarah",
    "shimmer": "af_bella",
    "verse": "am_liam",
}
# What fal-ai/whisper accepts, by extension ("mp3, mp4, mpeg, mpga, m4a, wav or webm",
# docs/fal-protocol.md §12.3).
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "mp4": "audio/mp4",
    "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg",
    "m4a": "audio/mp4",
    "wav": "audio/wav",
    "webm": "audio/webm",
}


@dataclass(frozen=True)
class MediaApp:
    """One fal app and how OpenAI's parameters reach it."""

    app_id: str
    family: Family
    # Images: how `size` is sent, and the ratios an `aspect_ratio` app allows.
    size_field: SizeField = "none"
    aspect_ratios: tuple[str, ...] = ()
    max_images: int = 1  # `num_images` upper bound; 1 with no `num_images` field
    # OpenAI value -> fal fields, for `quality` and `style` (absent: ignored).
    quality: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    style: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    output_formats: tuple[str, ...] = ()  # `output_format` values; empty: no such field
    # Edits: the field taking the input image(s), how many, a mask, and `strength`.
    image_field: Literal["image_url", "image_urls", ""] = ""
    max_input_images: int = 0
    mask: bool = False
    strength: bool = False
    # Speech-to-text: whether fal takes `prompt`. Both apps take `language: null` as "detect";
    # wizper's default is "en" (docs/fal-protocol.md §12.3), so the proxy always sends it.
    prompt: bool = False
    # Text-to-speech: the text field, voices, OpenAI voice aliases, output format.
    text_field: str = "prompt"
    voices: tuple[str, ...] = ()
    voice_aliases: Mapping[str, str] = field(default_factory=dict)
    default_voice: str = ""
    audio_format: str = ""  # the one format the app produces (OpenAI's name); the proxy
    # converts a "wav" app's audio to every other format (translate/speech_audio.py)
    audio_content_type: str = ""


def _steps(low: int, medium: int, high: int) -> dict[str, dict[str, Any]]:
    """OpenAI `quality` -> `num_inference_steps` (fewer steps: faster, rougher)."""
    return {
        "low": {"num_inference_steps": low},
        "medium": {"num_inference_steps": medium},
        "standard": {"num_inference_steps": medium},
        "high": {"num_inference_steps": high},
        "hd": {"num_inference_steps": high},
    }


_JPEG_PNG = ("jpeg", "png")

MEDIA_APPS: dict[str, MediaApp] = {
    app.app_id: app
    for app in (
        # -- text to image (docs/fal-protocol.md §10) --
        MediaApp(
            "fal-ai/flux/dev", "image", size_field="image_size", max_images=4,
            quality=_steps(14, 28, 40), output_formats=_JPEG_PNG,
        ),
        MediaApp(
            "fal-ai/flux/schnell", "image", size_field="image_size", max_images=4,
            quality=_steps(2, 4, 8), output_formats=_JPEG_PNG,
        ),
        MediaApp(
            "fal-ai/flux-pro/v1.1", "image", size_field="image_size", max_images=4,
            output_formats=_JPEG_PNG,
        ),
        MediaApp(
            "fal-ai/flux-pro/v1.1-ultra", "image", size_field="aspect_ratio",
            aspect_ratios=FLUX_RATIOS, max_images=4, output_formats=_JPEG_PNG,
            style={"natural": {"raw": True}, "vivid": {"raw": False}},
        ),
        MediaApp(
            "fal-ai/recraft/v3/text-to-image", "image", size_field="image_size",
            style={
                "natural": {"style": "realistic_image"},
                "vivid": {"style": "digital_illustration"},
            },
        ),
        MediaApp(
            "fal-ai/ideogram/v2", "image", size_field="aspect_ratio",
            aspect_ratios=IDEOGRAM_RATIOS,
            style={"natural": {"style": "realistic"}, "vivid": {"style": "general"}},
        ),
        # -- image edits (docs/fal-protocol.md §12.2) --
        MediaApp(
            "fal-ai/flux-pro/kontext", "edit", size_field="aspect_ratio",
            aspect_ratios=FLUX_RATIOS, max_images=4, output_formats=_JPEG_PNG,
            image_field="image_url", max_input_images=1,
        ),
        MediaApp(
            "fal-ai/flux-pro/kontext/multi", "edit", size_field="aspect_ratio",
            aspect_ratios=FLUX_RATIOS, max_images=4, output_formats=_JPEG_PNG,
            image_field="image_urls", max_input_images=4,
        ),
        MediaApp(
            "fal-ai/flux/dev/image-to-image", "edit", max_images=4, output_formats=_JPEG_PNG,
            image_field="image_url", max_input_images=1, strength=True,
        ),
        MediaApp(
            "fal-ai/flux-pro/v1/fill", "edit", max_images=4, output_formats=_JPEG_PNG,
            image_field="image_url", max_input_images=1, mask=True,
        ),
        # -- speech to text (docs/fal-protocol.md §12.3). fal-ai/whisper left fal-js's endpoint
        # list while fal-ai/wizper stayed: FAL_TRANSCRIBE_APP picks the default (docs/media.md) --
        MediaApp("fal-ai/whisper", "stt", prompt=True),
        MediaApp("fal-ai/wizper", "stt"),
        # -- text to speech (docs/fal-protocol.md §12.4): Kokoro produces 24 kHz WAV only --
        MediaApp(
            "fal-ai/kokoro/american-english", "tts", text_field="prompt",
            voices=KOKORO_US_VOICES, voice_aliases=KOKORO_OPENAI_VOICES,
            default_voice="af_heart", audio_format="wav", audio_content_type="audio/wav",
        ),
    )
}  # fmt: skip

# OpenAI's model ids, each standing for the default app of its family (a setting).
OPENAI_ALIASES: dict[str, Family] = {
    "dall-e-2": "image",
    "dall-e-3": "image",
    "gpt-image-1": "image",
    "whisper-1": "stt",
    "gpt-4o-transcribe": "stt",
    "gpt-4o-mini-transcribe": "stt",
    "tts-1": "tts",
    "tts-1-hd": "tts",
    "gpt-4o-mini-tts": "tts",
}


def generic_image_app(app_id: str) -> MediaApp:
    """Any other fal image app: `prompt`, `num_images` and `image_size` only."""
    return MediaApp(app_id, "image", size_field="image_size", max_images=4)


def media_model_ids() -> list[str]:
    """Every media id /v1/models lists: the apps, then OpenAI's aliases."""
    return [*MEDIA_APPS, *OPENAI_ALIASES]
