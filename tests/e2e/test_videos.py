"""OpenAI's Videos API through the openai SDK, against the simulator's video apps: create and
poll (text and image to video), every mapping of `seconds` and `size` as fal received it,
the content bytes, list and delete, ids nobody else can use, remix, the failures, and the
webhooks, verified with the SDK's own `webhooks.unwrap`."""

from __future__ import annotations

import io
import json
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import openai
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread
from fal_openai_proxy.simulator.video import SAMPLE_VIDEO

from ..support.chat import Records, of, sim, tagged
from ..support.media import make_png
from ..support.servers import (
    API_KEY,
    API_KEY_2,
    CLIENT_FAL_KEY,
    RunningProxy,
    proxy_settings,
    start_proxy,
)
from ..support.webhooks import WebhookReceiver, start_receiver

# The SDK marks the Videos API deprecated (Sora's shutdown); the calls are what clients make.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtdmlkZW8td2ViaG9va3M="
POLL_MS = 50


@pytest.fixture
def simulator(sim: SimulatorThread) -> SimulatorThread:
    """The simulator (`sim` is the directive helper here)."""
    return sim


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    running = start_receiver()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def videos_proxy(
    sim: SimulatorThread, tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver
) -> Iterator[RunningProxy]:
    """Two client keys, a SQLite database, webhooks, and a watcher that looks often (stopped
    with the module, so that it does not tick through the rest of the session)."""
    path = tmp_path_factory.mktemp("videos") / "proxy.db"
    running = start_proxy(
        proxy_settings(
            sim,
            api_key=f"{API_KEY},{API_KEY_2}",
            database_url=f"sqlite:///{path}",
            video_webhook_url=receiver.url,
            video_webhook_secret=WEBHOOK_SECRET,
            video_watch_interval=0.1,
            first_event_timeout=2.0,
            retry_budget=0.3,  # a submit fal keeps refusing comes back soon
            key_rate_limit_cooldown=0,
        )
    )
    yield running
    running.stop()


@pytest.fixture
def vclient(videos_proxy: RunningProxy, make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client(videos_proxy, api_key=API_KEY)


@pytest.fixture
def other(videos_proxy: RunningProxy, make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client(videos_proxy, api_key=API_KEY_2)


def submitted(sim_log: Records, token: str) -> dict[str, Any]:
    (record,) = of(sim_log("submit"), token)
    return record


def follow(client: openai.OpenAI, video_id: str, within: float = 15) -> list[Any]:
    """Every state of the video, retrieved until it is done."""
    seen = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        video = client.videos.retrieve(video_id)
        seen.append(video)
        if video.status in ("completed", "failed"):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"video still {seen[-1].status} after {within} s")


# -- create and poll --------------------------------------------------------------------------


def test_text_to_video_queues_runs_and_completes(vclient: openai.OpenAI, sim_log: Records) -> None:
    # Two seconds running, so that a poll sees in_progress even on a loaded machine (the
    # default 600 ms can pass between two polls there).
    token, prompt = tagged('a lighthouse at dawn [[sim {"latency_ms": 2000}]]')
    created = vclient.videos.create(model="sora-2", prompt=prompt, seconds="8", size="1280x720")
    assert created.status == "queued"
    assert created.progress == 0
    assert (created.model, created.seconds, created.size) == ("sora-2", "8", "1280x720")
    assert created.prompt == prompt
    states = follow(vclient, created.id)
    statuses = [s.status for s in states]
    assert "in_progress" in statuses
    assert statuses[-1] == "completed"
    progress = [s.progress for s in states]
    assert progress == sorted(progress), "progress only rises"
    assert all(p < 100 for s, p in zip(statuses, progress, strict=True) if s != "completed")
    done = states[-1]
    assert done.progress == 100
    assert done.completed_at is not None and done.completed_at >= created.created_at
    assert done.expires_at is not None and done.expires_at > done.completed_at
    record = submitted(sim_log, token)
    assert record["app"] == "fal-ai/veo3.1/fast"  # FAL_VIDEO_APP's default
    assert record["body"] == {
        "prompt": prompt,
        "duration": "8s",
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }


def test_create_and_poll_image_to_video_with_an_upload(
    vclient: openai.OpenAI, sim_log: Records
) -> None:
    token, prompt = tagged("the picture comes alive")
    image = make_png(32, 18)
    video = vclient.videos.create_and_poll(
        model="fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
        prompt=prompt,
        input_reference=("frame.png", image, "image/png"),
        seconds="8",
        poll_interval_ms=POLL_MS,
    )
    assert video.status == "completed", video.error
    assert video.seconds == "10"
    record = submitted(sim_log, token)
    assert record["app"] == "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"
    assert record["body"]["duration"] == "10"
    assert record["body"]["image_url"].startswith("data:image/png;base64,")
    assert "aspect_ratio" not in record["body"]  # the image decides


def test_json_create_with_an_image_url(
    videos_proxy: RunningProxy, vclient: openai.OpenAI, sim_log: Records
) -> None:
    token, prompt = tagged("a wave")
    reply = httpx.post(
        videos_proxy.v1 + "/videos",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={
            "model": "fal-ai/wan-25-preview/text-to-video",
            "prompt": prompt,
            "size": "720x1280",
            "input_reference": {"image_url": "https://example.com/first-frame.png"},
            "seed": 7,
            "negative_prompt": "blur",
        },
    )
    assert reply.status_code == 200, reply.text
    body = submitted(sim_log, token)["body"]
    assert body == {
        "prompt": prompt,
        "image_url": "https://example.com/first-frame.png",
        "resolution": "720p",
        "seed": 7,
        "negative_prompt": "blur",
    }
    video = vclient.videos.poll(reply.json()["id"], poll_interval_ms=POLL_MS)
    assert video.status == "completed"
    assert video.size == "auto"  # Wan's image-to-video takes the image's shape


# -- the mapping of seconds and size, as fal received it --------------------------------------

VEO = "fal-ai/veo3.1"
KLING = "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
WAN = "fal-ai/wan-25-preview/text-to-video"


@pytest.mark.parametrize(
    ("model", "seconds", "duration"),
    [
        (VEO, "4", "4s"), (VEO, "8", "8s"), (VEO, "12", "8s"),
        ("sora-2-pro", "4", "4s"),
        (KLING, "4", "5"), (KLING, "8", "10"), (KLING, "12", "10"),
        (WAN, "4", "5"), (WAN, "8", "10"), (WAN, "12", "10"),
    ],
)  # fmt: skip
def test_seconds_map_to_the_nearest_duration(
    vclient: openai.OpenAI, sim_log: Records, model: str, seconds: str, duration: str
) -> None:
    token, prompt = tagged("a kite")
    video = vclient.videos.create(model=model, prompt=prompt, seconds=seconds)  # type: ignore[arg-type]
    assert submitted(sim_log, token)["body"]["duration"] == duration
    assert video.seconds == duration.removesuffix("s")


@pytest.mark.parametrize(
    ("model", "size", "fields", "reported"),
    [
        (VEO, "1280x720", {"aspect_ratio": "16:9", "resolution": "720p"}, "1280x720"),
        (VEO, "720x1280", {"aspect_ratio": "9:16", "resolution": "720p"}, "720x1280"),
        (VEO, "1792x1024", {"aspect_ratio": "16:9", "resolution": "1080p"}, "1792x1024"),
        (VEO, "1024x1792", {"aspect_ratio": "9:16", "resolution": "1080p"}, "1024x1792"),
        (KLING, "1280x720", {"aspect_ratio": "16:9"}, "1280x720"),
        (KLING, "720x1280", {"aspect_ratio": "9:16"}, "720x1280"),
        (KLING, "1792x1024", {"aspect_ratio": "16:9"}, "1792x1024"),
        (KLING, "1024x1792", {"aspect_ratio": "9:16"}, "1024x1792"),
        (WAN, "1280x720", {"aspect_ratio": "16:9", "resolution": "720p"}, "1280x720"),
        (WAN, "720x1280", {"aspect_ratio": "9:16", "resolution": "720p"}, "720x1280"),
        (WAN, "1792x1024", {"aspect_ratio": "16:9", "resolution": "1080p"}, "1792x1024"),
        (WAN, "1024x1792", {"aspect_ratio": "9:16", "resolution": "1080p"}, "1024x1792"),
    ],
)
def test_size_maps_to_aspect_ratio_and_resolution(
    vclient: openai.OpenAI,
    sim_log: Records,
    model: str,
    size: str,
    fields: dict[str, str],
    reported: str,
) -> None:
    token, prompt = tagged("a harbour")
    video = vclient.videos.create(model=model, prompt=prompt, size=size)  # type: ignore[arg-type]
    body = submitted(sim_log, token)["body"]
    assert {k: body[k] for k in ("aspect_ratio", "resolution") if k in body} == fields
    assert video.size == reported


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"seconds": "7"}, "seconds"),
        ({"seconds": "60"}, "seconds"),
        ({"size": "640x480"}, "size"),  # 4:3: no video app makes it
        ({"size": "huge"}, "size"),
        ({"size": "1080x1080", "model": VEO}, "size"),  # Veo makes 16:9 or 9:16 only
        ({"model": "gpt-4o"}, "model"),
        ({"model": "fal-ai/veo3.1/image-to-video"}, "input_reference"),
        ({"model": "fal-ai/some/video-app", "seconds": "8"}, "seconds"),
        ({"model": VEO, "extra_body": {"cfg_scale": "0.3"}}, "cfg_scale"),
        ({"model": VEO, "extra_body": {"generate_audio": "perhaps"}}, "generate_audio"),
    ],
)
def test_what_no_app_can_honour_is_a_400_naming_the_param(
    vclient: openai.OpenAI, sim_log: Records, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        vclient.videos.create(prompt="a storm", **kwargs)
    assert caught.value.body["param"] == param  # type: ignore[index]
    assert not sim_log("submit")


def test_another_fal_app_passes_through_with_its_own_fields(
    vclient: openai.OpenAI, sim_log: Records
) -> None:
    token, prompt = tagged("a comet")
    with pytest.raises(openai.BadRequestError):  # the simulator does not know it: fal's 404
        vclient.videos.create(
            model="fal-ai/ltx-video-13b-distilled",
            prompt=prompt,
            extra_body={"num_frames": 121, "resolution": "720p"},
        )
    body = submitted(sim_log, token)["body"]
    assert body == {"prompt": prompt, "num_frames": "121", "resolution": "720p"}


# -- content ----------------------------------------------------------------------------------


def test_download_content_is_the_simulators_mp4(vclient: openai.OpenAI, sim_log: Records) -> None:
    video = vclient.videos.create_and_poll(
        model="fal-ai/veo3.1", prompt="a fox", poll_interval_ms=POLL_MS
    )
    content = vclient.videos.download_content(video.id)
    data = content.read()
    assert data == SAMPLE_VIDEO
    assert content.response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 8
    assert (frames[0].width, frames[0].height) == (64, 36)
    # The CDN file was read without the fal key (docs/fal-protocol.md §10).
    assert all(not r["body"]["authorization"] for r in sim_log("file_get"))


def test_content_variants(vclient: openai.OpenAI) -> None:
    plain = vclient.videos.create_and_poll(prompt="a bay", poll_interval_ms=POLL_MS)
    with pytest.raises(openai.NotFoundError) as caught:
        vclient.videos.download_content(plain.id, variant="thumbnail")
    assert "thumbnail" in caught.value.message
    assert caught.value.body["param"] == "variant"  # type: ignore[index]
    with_thumb = vclient.videos.create_and_poll(
        prompt="a bay " + sim({"thumbnail": True}), poll_interval_ms=POLL_MS
    )
    thumbnail = vclient.videos.download_content(with_thumb.id, variant="thumbnail")
    assert thumbnail.read().startswith(b"\x89PNG\r\n\x1a\n")
    assert thumbnail.response.headers["content-type"] == "image/png"


def test_content_before_completion_is_a_409(vclient: openai.OpenAI) -> None:
    video = vclient.videos.create(prompt="a slow one " + sim({"latency_ms": 5000}))
    with pytest.raises(openai.ConflictError) as caught:
        vclient.videos.download_content(video.id)
    assert caught.value.code == "video_not_ready"
    vclient.videos.delete(video.id)


def test_content_over_max_media_bytes_is_refused(
    proxy_factory: Callable[..., RunningProxy], make_client: Callable[..., openai.OpenAI]
) -> None:
    small = make_client(proxy_factory(max_media_bytes=1000))
    video = small.videos.create_and_poll(prompt="a big file", poll_interval_ms=POLL_MS)
    with pytest.raises(openai.APIStatusError) as caught:
        small.videos.download_content(video.id)
    assert caught.value.status_code == 502


# -- list, delete, and whose videos these are ---------------------------------------------------


def test_list_newest_first_by_cursor_and_delete(
    vclient: openai.OpenAI, simulator: SimulatorThread
) -> None:
    slow = sim({"latency_ms": 5000})  # still running when deleted
    ids = [vclient.videos.create(prompt=f"scene {n} {slow}").id for n in range(3)]
    page = vclient.videos.list(limit=2)
    assert [v.id for v in page.data] == ids[:0:-1], [v.prompt for v in page.data]
    assert page.has_more
    following = vclient.videos.list(limit=2, after=page.data[-1].id)
    assert following.data[0].id == ids[0]
    assert following.data[0].prompt == f"scene 0 {slow}"
    oldest_first = [v.id for v in vclient.videos.list(limit=100, order="asc").data]
    assert [i for i in oldest_first if i in ids] == ids
    deleted = vclient.videos.delete(ids[1])
    assert (deleted.id, deleted.deleted, deleted.object) == (ids[1], True, "video.deleted")
    assert ids[1] not in [v.id for v in vclient.videos.list(limit=100).data]
    with pytest.raises(openai.NotFoundError):
        vclient.videos.retrieve(ids[1])
    # Deleting a video still queued or running cancels it at fal.
    request_id = _request_id(simulator, f"scene 1 {slow}")
    log = simulator.state.log
    assert any(e.get("request_id") == request_id for e in log if e["kind"] == "cancelled")


def _request_id(simulator: SimulatorThread, prompt: str) -> str:
    records = [r for r in simulator.state.log if r["kind"] == "submit"]
    return str([r for r in records if r["body"].get("prompt") == prompt][-1]["request_id"])


def test_another_key_sees_nothing(vclient: openai.OpenAI, other: openai.OpenAI) -> None:
    video = vclient.videos.create_and_poll(prompt="mine", poll_interval_ms=POLL_MS)
    for call in (
        lambda: other.videos.retrieve(video.id),
        lambda: other.videos.download_content(video.id),
        lambda: other.videos.delete(video.id),
        lambda: other.videos.remix(video.id, prompt="theirs"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert video.id not in [v.id for v in other.videos.list(limit=100).data]
    assert vclient.videos.retrieve(video.id).status == "completed"


def test_a_forged_or_altered_id_is_a_404(vclient: openai.OpenAI) -> None:
    real = vclient.videos.create(prompt="genuine").id
    payload, _, signature = real.partition(".")
    altered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    for video_id in (altered, payload + ".AAAAAAAAAAAAAAAAAAAAAA", "video_123", "x" * 3000):
        with pytest.raises(openai.NotFoundError):
            vclient.videos.retrieve(video_id)


def test_without_a_database_list_and_delete_say_why(
    proxy_factory: Callable[..., RunningProxy], make_client: Callable[..., openai.OpenAI]
) -> None:
    client = make_client(proxy_factory(database_url="none"))
    video = client.videos.create_and_poll(prompt="no table", poll_interval_ms=POLL_MS)
    assert video.status == "completed"  # retrieve needs no database
    for call in (lambda: client.videos.list(), lambda: client.videos.delete(video.id)):
        with pytest.raises(openai.APIStatusError) as caught:
            call()
        assert caught.value.status_code == 501
        assert "DATABASE_URL" in caught.value.message


def test_pass_through_ids_belong_to_the_clients_fal_key(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path}/pass-through.db"
    running = proxy_factory(fal_key=None, database_url=database_url)
    mine = make_client(running, api_key=CLIENT_FAL_KEY)
    video = mine.videos.create_and_poll(prompt="my own key", poll_interval_ms=POLL_MS)
    assert video.status == "completed"
    assert mine.videos.download_content(video.id).read() == SAMPLE_VIDEO
    with pytest.raises(openai.NotFoundError):
        make_client(running, api_key="another-fal-key").videos.retrieve(video.id)
    # No watcher runs without a server key: the retrieve that saw the end recorded it, so a
    # restarted server lists the video as completed.
    running.stop()
    restarted = make_client(
        proxy_factory(fal_key=None, database_url=database_url), api_key=CLIENT_FAL_KEY
    )
    listed = restarted.videos.list().data
    assert [(v.id, v.status, v.progress) for v in listed] == [(video.id, "completed", 100)]


# -- remix ------------------------------------------------------------------------------------


def test_remix_extends_a_veo_video(vclient: openai.OpenAI, sim_log: Records) -> None:
    source = vclient.videos.create_and_poll(
        model="fal-ai/veo3.1/fast", prompt="a road", poll_interval_ms=POLL_MS
    )
    token, prompt = tagged("and then it rains")
    remix = vclient.videos.remix(source.id, prompt=prompt)
    assert remix.remixed_from_video_id == source.id
    record = submitted(sim_log, token)
    assert record["app"] == "fal-ai/veo3.1/fast/extend-video"
    assert record["body"]["video_url"].endswith(".mp4")
    done = vclient.videos.poll(remix.id, poll_interval_ms=POLL_MS)
    assert done.status == "completed"
    assert done.remixed_from_video_id == source.id


def test_remix_where_no_app_extends_names_the_model(vclient: openai.OpenAI) -> None:
    source = vclient.videos.create_and_poll(model=KLING, prompt="a bird", poll_interval_ms=POLL_MS)
    with pytest.raises(openai.BadRequestError) as caught:
        vclient.videos.remix(source.id, prompt="again")
    assert caught.value.body["param"] == "model"  # type: ignore[index]
    assert KLING in caught.value.message


# -- failures ---------------------------------------------------------------------------------


def test_fal_422_is_a_failed_video_with_the_apps_message(vclient: openai.OpenAI) -> None:
    video = vclient.videos.create_and_poll(
        model=VEO, prompt="too long", extra_body={"duration": "7s"}, poll_interval_ms=POLL_MS
    )
    assert video.status == "failed"
    assert video.error is not None
    assert video.error.code == "invalid_input"
    assert "duration" in video.error.message and "'8s'" in video.error.message
    with pytest.raises(openai.ConflictError):
        vclient.videos.download_content(video.id)


@pytest.mark.parametrize(
    ("directive", "code"),
    [
        ({"completed_error": "GPU fell over", "error_type": "runner_server_error"},
         "runner_server_error"),
        ({"completed_error": "Request timed out", "error_type": "request_timeout"}, "timeout"),
    ],
)  # fmt: skip
def test_a_job_fal_fails_is_a_failed_video(
    vclient: openai.OpenAI, directive: dict[str, Any], code: str
) -> None:
    video = vclient.videos.create_and_poll(
        prompt="doomed " + sim(directive), poll_interval_ms=POLL_MS
    )
    assert video.status == "failed"
    assert video.error is not None and video.error.code == code
    assert directive["completed_error"] in video.error.message


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.APIStatusError)],
)
def test_a_submit_fal_refuses_is_the_clients_error(
    vclient: openai.OpenAI, status: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        vclient.videos.create(prompt="refused " + sim({"status": status}))


def test_a_status_fal_cannot_give_in_time_is_a_504_and_the_video_lives_on(
    vclient: openai.OpenAI,
) -> None:
    hang = {"poll_fail": {"op": "status", "times": 1, "status": -1}}
    video = vclient.videos.create(prompt="patience " + sim(hang))
    with pytest.raises(openai.InternalServerError) as caught:  # FIRST_EVENT_TIMEOUT is 2 s
        vclient.videos.retrieve(video.id)
    assert caught.value.status_code == 504
    assert vclient.videos.poll(video.id, poll_interval_ms=POLL_MS).status == "completed"


def test_a_client_that_leaves_never_cancels_its_video(
    videos_proxy: RunningProxy, simulator: SimulatorThread, sim_log: Records
) -> None:
    token, prompt = tagged("left at once")
    body = json.dumps({"prompt": prompt}).encode()
    head = (
        f"POST /v1/videos HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", videos_proxy.port)) as conn:
        conn.sendall(head + body)  # and gone before the answer
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        found = of(sim_log("submit"), token)
        time.sleep(0.02)
    (record,) = found
    job = simulator.state.jobs[record["request_id"]]
    while job.status(time.monotonic()) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.cancelled_at is None
    assert job.error is None


# -- webhooks ---------------------------------------------------------------------------------


def test_webhooks_are_signed_as_openai_signs_them(
    vclient: openai.OpenAI, receiver: WebhookReceiver
) -> None:
    done = vclient.videos.create_and_poll(prompt="ring me", poll_interval_ms=POLL_MS)
    failed = vclient.videos.create_and_poll(
        prompt="ring me too " + sim({"completed_error": "no", "error_type": "runner_server_error"}),
        poll_interval_ms=POLL_MS,
    )
    for video, kind in ((done, "video.completed"), (failed, "video.failed")):
        (delivery,) = receiver.wait(lambda d, v=video: v.id.encode() in d.body)
        event = vclient.webhooks.unwrap(delivery.body, delivery.headers, secret=WEBHOOK_SECRET)
        raw = json.loads(delivery.body)
        assert (raw["type"], raw["data"]["id"], raw["object"]) == (kind, video.id, "event")
        assert event.type == kind  # type: ignore[comparison-overlap]
    with pytest.raises(openai.InvalidWebhookSignatureError):
        vclient.webhooks.unwrap(
            delivery.body, delivery.headers, secret="whsec_" + "d3Jvbmctc2VjcmV0"
        )


def test_a_refused_webhook_is_retried(vclient: openai.OpenAI, receiver: WebhookReceiver) -> None:
    receiver.refuse = 1
    video = vclient.videos.create_and_poll(prompt="try again", poll_interval_ms=POLL_MS)
    attempts = receiver.wait(lambda d: video.id.encode() in d.body and d.status == 200, within=20)
    assert attempts, "never delivered"
    tries = [d for d in receiver.deliveries if video.id.encode() in d.body]
    assert [d.status for d in tries] == [500, 200]
    assert tries[0].headers["webhook-id"] == tries[1].headers["webhook-id"]


def test_models_lists_the_video_models_with_their_kind(vclient: openai.OpenAI) -> None:
    models = {m.id: m for m in vclient.models.list()}
    assert models["sora-2"].kind == "text-to-video"  # type: ignore[attr-defined]
    kinds = {getattr(models[a], "kind", None) for a in (VEO, KLING, "fal-ai/veo3.1/image-to-video")}
    assert kinds == {"text-to-video", "image-to-video"}


def test_the_shipped_mp4_decodes() -> None:
    path = Path(__file__).parents[2] / "src/fal_openai_proxy/simulator/data/sample.mp4"
    assert path.read_bytes() == SAMPLE_VIDEO
    with warnings.catch_warnings(), av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
