"""The video mapping, ids and webhook signatures, as pure functions."""

from __future__ import annotations

import warnings
from typing import Any

import openai
import pytest

from fal_openai_proxy.fal.errors import FalStatusError, FalTimeout
from fal_openai_proxy.fal.video_apps import VIDEO_APPS, generic_video_app
from fal_openai_proxy.openai.errors import ProxyError
from fal_openai_proxy.openai.webhooks import signed_headers, video_event
from fal_openai_proxy.services.video_ids import VideoIds, VideoRef
from fal_openai_proxy.translate.videos import (
    build_video_input,
    coerce_form_field,
    output_urls,
    parse_seconds,
    parse_size,
    progress_estimate,
    video_error,
)

VEO = VIDEO_APPS["fal-ai/veo3.1"]
VEO_I2V = VIDEO_APPS["fal-ai/veo3.1/image-to-video"]
KLING_I2V = VIDEO_APPS["fal-ai/kling-video/v2.5-turbo/pro/image-to-video"]
WAN = VIDEO_APPS["fal-ai/wan-25-preview/text-to-video"]


def test_every_row_is_consistent() -> None:
    for app in VIDEO_APPS.values():
        assert app.default_duration in app.durations, app.app_id
        assert not app.image_app or VIDEO_APPS[app.image_app].kind == "image-to-video"
        assert not app.remix_app or VIDEO_APPS[app.remix_app].kind == "extend"
        assert (app.kind == "image-to-video") == bool(app.image_field)


@pytest.mark.parametrize(
    ("raw", "seconds"), [("4", 4), ("8", 8), ("12", 12), (10, 10), ("6s", 6), (None, None)]
)
def test_seconds(raw: Any, seconds: int | None) -> None:
    assert parse_seconds(raw) == seconds


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("1280x720", ("16:9", "720p")),
        ("720x1280", ("9:16", "720p")),
        ("1792x1024", ("16:9", "1080p")),
        ("1024x1792", ("9:16", "1080p")),
        ("1920x1080", ("16:9", "1080p")),
        ("1080x1080", ("1:1", "1080p")),
        ("854x480", ("16:9", "480p")),
        ("3840x2160", ("16:9", "4k")),
    ],
)
def test_sizes(raw: str, parsed: tuple[str, str]) -> None:
    assert parse_size(raw) == parsed


@pytest.mark.parametrize(
    ("value", "param"),
    [("seconds", "7"), ("seconds", "0"), ("seconds", "-4"), ("size", "640x480"),
     ("size", "100x100"), ("size", "8000x4500"), ("size", "1280*720")],
)  # fmt: skip
def test_what_no_app_makes_is_a_400(value: str, param: str) -> None:
    parse = parse_seconds if value == "seconds" else parse_size
    with pytest.raises(ProxyError) as caught:
        parse(param)
    assert (caught.value.status, caught.value.param) == (400, value)


def test_defaults_are_reported_and_nothing_is_sent_for_them() -> None:
    ask = build_video_input(VEO, "p", None, None, {})
    assert ask.fal_input == {"prompt": "p"}
    assert (ask.seconds, ask.size) == ("8", "1280x720")
    ask = build_video_input(WAN, "p", None, None, {})
    assert (ask.seconds, ask.size) == ("5", "1792x1024")
    ask = build_video_input(VEO_I2V, "p", 4, None, {})
    assert (ask.fal_input, ask.seconds, ask.size) == (
        {"prompt": "p", "duration": "4s"},
        "4",
        "auto",
    )


def test_a_resolution_the_app_lacks_becomes_its_nearest() -> None:
    ask = build_video_input(VEO, "p", None, ("16:9", "480p"), {})
    assert ask.fal_input["resolution"] == "720p"
    assert ask.size == "1280x720"
    ask = build_video_input(KLING_I2V, "p", 12, ("9:16", "1080p"), {})
    assert ask.fal_input == {"prompt": "p", "duration": "10"}
    assert ask.size == "auto"


def test_the_clients_own_fields_win_and_unknown_ones_are_refused() -> None:
    ask = build_video_input(VEO, "p", 4, ("16:9", "720p"), {"duration": "6s", "seed": 3})
    assert ask.fal_input == {
        "prompt": "p", "duration": "6s", "seed": 3, "aspect_ratio": "16:9", "resolution": "720p",
    }  # fmt: skip
    assert ask.seconds == "6"
    with pytest.raises(ProxyError) as caught:
        build_video_input(KLING_I2V, "p", None, None, {"resolution": "720p"})
    assert caught.value.param == "resolution"
    with pytest.raises(ProxyError) as caught:
        build_video_input(WAN, "x" * 1501, None, None, {})
    assert caught.value.param == "prompt"


def test_a_generic_app_takes_what_the_client_names() -> None:
    app = generic_video_app("someone/video", image=False)
    ask = build_video_input(
        app, "p", None, None, {"duration": "5", "aspect_ratio": "9:16"}, generic=True
    )
    assert ask.fal_input == {"prompt": "p", "duration": "5", "aspect_ratio": "9:16"}
    assert (ask.seconds, ask.size) == ("5", "720x1280")
    with pytest.raises(ProxyError):
        build_video_input(app, "p", None, ("16:9", "720p"), {}, generic=True)


def test_form_fields_become_the_apps_types() -> None:
    assert coerce_form_field("seed", "42") == 42
    assert coerce_form_field("generate_audio", "false") is False
    assert coerce_form_field("cfg_scale", "0.25") == 0.25
    assert coerce_form_field("negative_prompt", "42") == "42"
    with pytest.raises(ProxyError):
        coerce_form_field("seed", "many")


def test_progress_only_rises_and_stays_under_100() -> None:
    values = [progress_estimate(t, 60) for t in range(0, 3600, 7)]
    assert values == sorted(values)
    assert values[0] == 0 and max(values) == 99


def test_outputs_and_errors() -> None:
    assert output_urls({"video": {"url": "https://v3.fal.media/a.mp4"}, "seed": 1}) == {
        "video": "https://v3.fal.media/a.mp4"
    }
    assert output_urls({"video": {"url": "v"}, "thumbnail": {"url": "t"}}) == {
        "video": "v", "thumbnail": "t",
    }  # fmt: skip
    assert video_error(FalStatusError(422, "duration: bad"))["code"] == "invalid_input"
    assert (
        video_error(FalStatusError(504, "slow", error_type="request_timeout"))["code"] == "timeout"
    )
    error = video_error(FalStatusError(500, "oops", error_type="runner_server_error"))
    assert error == {"code": "runner_server_error", "message": "fal failed: oops"}
    policy = FalStatusError(422, "no", error_type="content_policy_violation")
    assert video_error(policy)["code"] == "invalid_input"  # a 422 is the input's fault first
    assert (
        video_error(FalStatusError(400, "no", error_type="content_policy_violation"))["code"]
        == "moderation_blocked"
    )
    assert video_error(FalTimeout("total", 5))["code"] == "timeout"


def _ref(**changes: Any) -> VideoRef:
    fields: dict[str, Any] = {
        "app": "fal-ai/veo3.1/fast", "request_id": "f2b1c0de-0000-4000-8000-000000000001",
        "key_tag": "kTag", "owner": "oTag", "created_at": 1_790_000_000, "model": "sora-2",
        "seconds": "8", "size": "1280x720",
    }  # fmt: skip
    return VideoRef(**{**fields, **changes})


def test_ids_carry_their_job_and_cannot_be_altered_or_forged() -> None:
    ids = VideoIds(b"s" * 32)
    ref = _ref()
    video_id = ids.encode(ref)
    assert video_id.startswith("video_")
    assert ids.decode(video_id) == ref
    assert VideoIds(b"t" * 32).decode(video_id) is None
    for i in range(len("video_"), len(video_id)):
        changed = video_id[:i] + ("A" if video_id[i] != "A" else "B") + video_id[i + 1 :]
        assert ids.decode(changed) is None, i
    remix = _ref(request_id="another", source=ref)
    assert ids.decode(ids.encode(remix)) == remix
    nested = _ref(request_id="third", source=remix)  # a remix of a remix keeps one level
    assert ids.decode(ids.encode(nested)).source == ref.__class__(
        **{**remix.__dict__, "source": None}
    )  # type: ignore[union-attr]
    assert ids.owner_tag("key-0") != ids.owner_tag("key-1")
    assert "key-0" not in ids.owner_tag("key-0")


def test_webhooks_verify_with_the_openai_sdk() -> None:
    secret = "whsec_" + "bXktd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMhIQ=="
    body = video_event("evt_1", "video.completed", 1_790_000_000, "video_abc")
    import time

    headers = signed_headers(secret, "evt_1", int(time.time()), body)
    client = openai.OpenAI(api_key="unused", webhook_secret=secret)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.webhooks.verify_signature(body, headers)
        plain = signed_headers("plain-secret", "evt_1", int(time.time()), body)
        client.webhooks.verify_signature(body, plain, secret="plain-secret")
        with pytest.raises(openai.InvalidWebhookSignatureError):
            client.webhooks.verify_signature(body + b" ", headers)
    client.close()
