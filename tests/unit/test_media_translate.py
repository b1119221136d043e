"""The pure media translations: sizes and ratios, the table's rows, transcripts."""

from __future__ import annotations

import pytest

from fal_openai_proxy.fal.media_apps import MEDIA_APPS, OPENAI_ALIASES, generic_image_app
from fal_openai_proxy.openai.errors import ProxyError
from fal_openai_proxy.serve.config_check import run_checks
from fal_openai_proxy.translate.audio import segments, speech_input, srt, verbose_body, vtt
from fal_openai_proxy.translate.images import (
    ImageParams,
    build_image_input,
    image_usage,
    nearest_ratio,
    parse_size,
)


@pytest.mark.parametrize(
    ("size", "ratios", "expected"),
    [
        ((1024, 1024), ("16:9", "1:1", "9:16"), "1:1"),
        ((1536, 1024), ("21:9", "16:9", "4:3", "3:2", "1:1"), "3:2"),
        ((1792, 1024), ("16:10", "16:9"), "16:9"),
        ((1024, 1536), ("2:3", "3:4", "9:16"), "2:3"),
        ((4096, 64), ("3:1", "1:1"), "3:1"),
    ],
)
def test_nearest_ratio(size: tuple[int, int], ratios: tuple[str, ...], expected: str) -> None:
    assert nearest_ratio(*size, ratios) == expected


@pytest.mark.parametrize("size", ["1024", "1024x", "x1024", "1024*1024", "32x32", "5000x1024"])
def test_bad_sizes_name_size(size: str) -> None:
    with pytest.raises(ProxyError) as info:
        parse_size(size)
    assert info.value.param == "size"


def test_auto_size_is_the_apps_default() -> None:
    assert parse_size("auto") is None
    assert "image_size" not in build_image_input(MEDIA_APPS["fal-ai/flux/dev"], ImageParams("p"))


def test_every_row_is_consistent() -> None:
    for app in MEDIA_APPS.values():
        assert (app.size_field == "aspect_ratio") == bool(app.aspect_ratios), app.app_id
        assert (app.family == "edit") == bool(app.image_field), app.app_id
        if app.family == "tts":
            assert app.default_voice in app.voices
            assert set(app.voice_aliases.values()) <= set(app.voices)
    assert set(OPENAI_ALIASES.values()) <= {"image", "stt", "tts"}


def test_generic_app_gets_prompt_n_and_size() -> None:
    fal = build_image_input(
        generic_image_app("someone/app"), ImageParams("p", n=2, size="640x480", quality="hd")
    )
    assert fal == {"prompt": "p", "num_images": 2, "image_size": {"width": 640, "height": 480}}


def test_usage_only_when_fal_gives_token_counts() -> None:
    assert image_usage(None) is None
    assert image_usage({"cost": 0.1}) is None
    usage = image_usage({"input_tokens": 3, "output_tokens": 5, "total_tokens": 8})
    assert usage == {
        "input_tokens": 3,
        "output_tokens": 5,
        "total_tokens": 8,
        "input_tokens_details": {"text_tokens": 3, "image_tokens": 0},
    }


OUTPUT = {
    "text": " Hello there. General Kenobi.",
    "chunks": [
        {"timestamp": [0.0, 1.25], "text": " Hello there."},
        {"timestamp": [1.25, None], "text": " General Kenobi."},
    ],
    "inferred_languages": ["en"],
}


def test_srt_and_vtt_from_chunks_with_an_open_end() -> None:
    parts = segments(OUTPUT, 3.5)
    assert [(p.start, p.end) for p in parts] == [(0.0, 1.25), (1.25, 3.5)]
    assert srt(parts) == (
        "1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n"
        "2\n00:00:01,250 --> 00:00:03,500\nGeneral Kenobi.\n"
    )
    assert vtt(parts).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n")


def test_no_chunks_is_one_segment() -> None:
    parts = segments({"text": "Just text."}, None)
    assert [(p.start, p.end, p.text) for p in parts] == [(0.0, 0.0, "Just text.")]


def test_verbose_duration_falls_back_to_the_last_end() -> None:
    body = verbose_body(OUTPUT, task="transcribe", language="en", duration=None, temperature=0.2)
    assert body["duration"] == 1.25
    assert body["segments"][0]["temperature"] == 0.2
    assert body["text"] == "Hello there. General Kenobi."


def test_unknown_voice_lists_the_valid_ones() -> None:
    kokoro = MEDIA_APPS["fal-ai/kokoro/american-english"]
    with pytest.raises(ProxyError) as info:
        speech_input(kokoro, "hi", "gandalf", None)
    assert info.value.param == "voice"
    assert "alloy" in info.value.message and "am_santa" in info.value.message
    assert speech_input(kokoro, "hi", "onyx", None) == {"prompt": "hi", "voice": "am_onyx"}


def test_check_config_names_an_audio_app_outside_the_table() -> None:
    problems = run_checks(
        {"fal_transcribe_app": "fal-ai/wisper", "fal_speech_app": "fal-ai/wizper"}, env_file=None
    )
    assert "FAL_TRANSCRIBE_APP: must be one of fal-ai/whisper, fal-ai/wizper (docs/media.md)." in (
        problems
    )
    assert any(p.startswith("FAL_SPEECH_APP: must be one of fal-ai/kokoro") for p in problems)
    switched = run_checks({"fal_transcribe_app": "fal-ai/wizper"}, env_file=None)
    assert not [p for p in switched if "_APP" in p]
