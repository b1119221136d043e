"""fal's server-proxy targets: what each is, where it goes, which apps pass
(docs/fal-protocol.md §13)."""

from __future__ import annotations

import pytest

from fal_openai_proxy.fal.proxy_protocol import (
    TargetRefused,
    Upstreams,
    app_allowed,
    parse_app_globs,
    parse_target,
)

# What fal-js builds for each call (queue.ts, streaming.ts, storage.ts, request.ts).
CALLS = [
    ("https://fal.run/fal-ai/flux/dev", "run", "fal-ai/flux/dev", None),
    ("https://fal.run/fal-ai/any-llm/stream", "stream", "fal-ai/any-llm", None),
    ("https://fal.run/fal-ai/flux", "run", "fal-ai/flux", None),
    ("https://fal.run/fal-ai/stream", "run", "fal-ai/stream", None),  # an app named stream
    ("https://queue.fal.run/fal-ai/flux/dev", "submit", "fal-ai/flux/dev", None),
    ("https://queue.fal.run/fal-ai/flux/dev?fal_webhook=https%3A%2F%2Fx", "submit",
     "fal-ai/flux/dev", None),
    ("https://queue.fal.run/fal-ai/flux/requests/r1/status?logs=1", "status", "fal-ai/flux", "r1"),
    ("https://queue.fal.run/fal-ai/flux/requests/r1/status/stream?logs=0", "status_stream",
     "fal-ai/flux", "r1"),
    ("https://queue.fal.run/fal-ai/flux/requests/r1", "result", "fal-ai/flux", "r1"),
    ("https://queue.fal.run/fal-ai/flux/requests/r1/cancel", "cancel", "fal-ai/flux", "r1"),
    ("https://queue.fal.run/fal-ai/flux/requests/r1/logs", "request", "fal-ai/flux", "r1"),
    ("https://queue.fal.run/workflows/me/flow/requests/r1", "result", "workflows/me/flow", "r1"),
    ("https://QUEUE.FAL.RUN:443/comfy/me/flow/x", "submit", "comfy/me/flow/x", None),
    ("https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3", "upload", None, None),
]  # fmt: skip


@pytest.mark.parametrize(("url", "kind", "app", "request_id"), CALLS)
def test_every_call_of_fals_client_is_understood(
    url: str, kind: str, app: str | None, request_id: str | None
) -> None:
    target = parse_target(url)
    assert (target.kind, target.app, target.request_id) == (kind, app, request_id)
    assert target.starts_work == (kind in ("run", "stream", "submit"))
    assert target.follows_up == (request_id is not None)


def test_fals_hosts_are_rewritten_to_the_configured_ones() -> None:
    upstreams = Upstreams("http://sim/run", "http://sim/queue/", "http://sim/rest")
    for url, expected in [
        ("https://fal.run/fal-ai/flux/dev", "http://sim/run/fal-ai/flux/dev"),
        ("https://queue.fal.run/a/b/requests/r/status?logs=0",
         "http://sim/queue/a/b/requests/r/status?logs=0"),
        ("https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3",
         "http://sim/rest/storage/upload/initiate?storage_type=fal-cdn-v3"),
    ]:  # fmt: skip
        assert upstreams.url_for(parse_target(url)) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://fal.run/fal-ai/flux/dev/../../x",
        "https://fal.run/fal-ai/./flux",
        "https://fal.run/fal-ai/fl%75x",
        "https://fal.run/fal-ai/flux\tdev",
        "https://fal.run:80/fal-ai/flux",
        "https://fal.run:bad/fal-ai/flux",
        "https://a:b@fal.run/fal-ai/flux",
        "https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3&x=1",
        "https://rest.fal.ai/storage/upload/complete-multipart?storage_type=gcs",
        "https://queue.fal.run/workflows/me",
        "//fal.run/fal-ai/flux",
    ],
)
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        parse_target(url)


def test_app_globs() -> None:
    globs = parse_app_globs(" fal-ai/flux/* , fal-ai/kling-video/**,, /fal-ai/any-llm/ ")
    assert globs == ("fal-ai/flux/*", "fal-ai/kling-video/**", "fal-ai/any-llm")
    assert app_allowed("fal-ai/flux/dev", globs)
    assert app_allowed("fal-ai/kling-video/v2.5-turbo/pro/text-to-video", globs)
    assert not app_allowed("fal-ai/flux", globs)  # the glob names its sub-paths only
    assert not app_allowed("fal-ai/whisper", globs)
    # A follow-up names owner/alias only: the glob's first two segments decide.
    assert app_allowed("fal-ai/flux", globs, base_only=True)
    assert app_allowed("fal-ai/any-llm", globs, base_only=True)
    assert not app_allowed("fal-ai/whisper", globs, base_only=True)
    assert app_allowed("anyone/app", ("*",), base_only=True)
    assert parse_app_globs("") == ()
