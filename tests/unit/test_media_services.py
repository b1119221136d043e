"""services/images.py and services/audio.py end to end through the fake transport: the fal
calls each makes (queue submit, status, result, the file it fetches), what it answers, and
where the fal key goes and where it never does. No sockets."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from starlette.responses import Response

from fal_openai_proxy.base.metrics import Metrics
from fal_openai_proxy.base.settings import Settings
from fal_openai_proxy.fal.client import FalClient
from fal_openai_proxy.fal.errors import FalUnsafeURL
from fal_openai_proxy.fal.files import FalFiles
from fal_openai_proxy.fal.media_apps import media_model_ids
from fal_openai_proxy.fal.media_fetch import DEFAULT_MEDIA_HOSTS, MediaFetcher, MediaPolicy
from fal_openai_proxy.fal.timeouts import Timeouts
from fal_openai_proxy.openai.errors import ProxyError
from fal_openai_proxy.openai.forms import Form, FormFile
from fal_openai_proxy.openai.images import ImageGenerationRequest
from fal_openai_proxy.serve.context import AccessLogFields, RequestContext
from fal_openai_proxy.services.audio import AudioService
from fal_openai_proxy.services.catalog import Catalog
from fal_openai_proxy.services.images import ImageService
from fal_openai_proxy.services.pricing import CostMeter, load_price_table

from ..support.fake_transport import FakeResponse, MockTransport, SentRequest
from ..support.media import make_png, make_wav

QUEUE = "https://queue.fal.run"
CDN = "https://v3.fal.media/files"
CLIENT_KEY = "client-fal-key"  # pass-through: the client's own fal key
TIMEOUTS = Timeouts(connect=1, first_event=1, idle=1, total=5, keepalive=10, retry_budget=0)


def fal_queue(app: str, output: dict[str, Any], files: dict[str, bytes]) -> MockTransport:
    """fal's queue for one job of `app` that completes with `output`, and its CDN's files."""
    request = f"{QUEUE}/{app}/requests/r1"
    submitted = {
        "request_id": "r1",
        "status_url": f"{request}/status",
        "response_url": request,
        "cancel_url": f"{request}/cancel",
    }
    routes: dict[tuple[str, str], Callable[[], FakeResponse]] = {
        ("POST", f"{QUEUE}/{app}"): lambda: FakeResponse(200, {}, [orjson.dumps(submitted)]),
        ("GET", f"{request}/status/stream?logs=0"): lambda: FakeResponse(
            200,
            {"content-type": "text/event-stream"},
            [b'data: {"status": "COMPLETED"}\n\n'],
        ),
        ("GET", request): lambda: FakeResponse(
            200, {"x-fal-request-id": "r1"}, [orjson.dumps(output)]
        ),
    }
    for name, data in files.items():
        routes[("GET", f"{CDN}/{name}")] = (
            lambda data=data: FakeResponse(  # type: ignore[misc]
                200, {"content-type": "application/octet-stream"}, [data[:100], data[100:]]
            )
        )

    def answer(sent: SentRequest) -> FakeResponse | Exception:
        found = routes.get((sent.method, sent.url))
        return found() if found else AssertionError(f"unexpected {sent.method} {sent.url}")

    return MockTransport(answer)


def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def services(transport: MockTransport) -> tuple[ImageService, AudioService]:
    config = settings()
    metrics = Metrics()
    fal = FalClient(
        run_url="https://fal.run", queue_url=QUEUE, http=transport, pool=None,
        timeouts=TIMEOUTS, metrics=metrics,
    )  # fmt: skip
    policy = MediaPolicy(DEFAULT_MEDIA_HOSTS, [QUEUE])
    media = MediaFetcher(
        transport, policy, max_file_bytes=config.max_media_bytes,
        bytes_per_request=config.media_bytes_per_request, idle_timeout=1, request_timeout=5,
    )  # fmt: skip
    files = FalFiles.build(
        transport, media, rest_url="https://rest.alpha.fal.ai", pool=None,
        retry_budget=0, metrics=metrics, timeout=1,
    )  # fmt: skip
    catalog = Catalog(config.fal_chat_app)
    catalog.add_media(media_model_ids())
    meter = CostMeter(load_price_table(None))
    return (
        ImageService(config, fal, files, catalog, meter),
        AudioService(config, fal, files, catalog, meter),
    )


def context() -> RequestContext:
    return RequestContext(AccessLogFields("test"), fal_key=CLIENT_KEY)


async def never_disconnects() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


def body(response: Response) -> Any:
    return orjson.loads(bytes(response.body))


def sent_to(transport: MockTransport, prefix: str) -> list[SentRequest]:
    return [s for s in transport.sent if s.url.startswith(prefix)]


PNG = make_png(32, 16)
IMAGES = {"images": [{"url": f"{CDN}/{n}.png", "width": 32, "height": 16} for n in "abc"]}


async def test_an_image_as_a_url_goes_through_fal_queue_with_the_key() -> None:
    transport = fal_queue("fal-ai/flux/dev", {**IMAGES, "prompt": "a lighthouse, at dusk"}, {})
    images, _ = services(transport)
    request = ImageGenerationRequest(
        prompt="a lighthouse", model="fal-ai/flux/dev", size="1024x768"
    )
    ctx = context()
    answer = body(await images.generate(request, ctx, never_disconnects))
    assert answer["data"] == [
        {"url": f"{CDN}/a.png", "revised_prompt": "a lighthouse, at dusk"}
    ]  # one asked for: fal's extra images are dropped
    submit = transport.sent[0]
    assert submit.method == "POST" and submit.url == f"{QUEUE}/fal-ai/flux/dev"
    assert submit.headers["Authorization"] == f"Key {CLIENT_KEY}"
    sent = orjson.loads(submit.body or b"")
    assert sent["prompt"] == "a lighthouse"
    assert sent["image_size"] == {"width": 1024, "height": 768}
    assert not sent_to(transport, CDN)  # a URL answer fetches nothing
    assert ctx.usage.images == 3  # what fal made, and bills: all three
    assert ctx.usage.fal_app == "fal-ai/flux/dev"
    assert ctx.usage.cost is not None and ctx.usage.cost_source == "price_table"
    assert ctx.log.fal_request_id == "r1"


async def test_b64_json_fetches_each_image_without_the_key() -> None:
    files = {"a.png": PNG, "b.png": PNG[::-1]}
    transport = fal_queue("fal-ai/flux/dev", IMAGES, files)
    images, _ = services(transport)
    request = ImageGenerationRequest(
        prompt="two", model="fal-ai/flux/dev", n=2, response_format="b64_json"
    )
    answer = body(await images.generate(request, context(), never_disconnects))
    assert [base64.b64decode(d["b64_json"]) for d in answer["data"]] == [PNG, PNG[::-1]]
    fetched = sent_to(transport, CDN)
    assert [s.url for s in fetched] == [f"{CDN}/a.png", f"{CDN}/b.png"]  # not c: n is 2
    assert all("Authorization" not in s.headers for s in fetched)


async def test_an_image_url_off_fals_hosts_is_never_fetched() -> None:
    output = {"images": [{"url": "https://127.0.0.1/secret.png"}]}
    transport = fal_queue("fal-ai/flux/dev", output, {})
    images, _ = services(transport)
    request = ImageGenerationRequest(
        prompt="p", model="fal-ai/flux/dev", response_format="b64_json"
    )
    with pytest.raises(FalUnsafeURL, match="outside fal's media hosts"):
        await images.generate(request, context(), never_disconnects)
    assert not [s for s in transport.sent if "127.0.0.1" in s.url]


async def test_an_edit_sends_a_small_image_inline() -> None:
    transport = fal_queue("fal-ai/flux-pro/kontext", IMAGES, {})
    images, _ = services(transport)
    form = Form(
        fields={"prompt": "make it blue", "model": "fal-ai/flux-pro/kontext"},
        files={"image": [FormFile("image", "cat.png", "image/png", PNG)]},
    )
    answer = body(await images.edit(form, context(), never_disconnects))
    assert answer["data"][0]["url"] == f"{CDN}/a.png"
    sent = orjson.loads(transport.sent[0].body or b"")
    assert sent["image_url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()


async def test_an_edit_refuses_a_file_that_is_no_image_before_calling_fal() -> None:
    transport = fal_queue("fal-ai/flux-pro/kontext", IMAGES, {})
    images, _ = services(transport)
    form = Form(
        fields={"prompt": "p", "model": "fal-ai/flux-pro/kontext"},
        files={"image": [FormFile("image", "cat.png", "image/png", b"not an image")]},
    )
    with pytest.raises(ProxyError) as info:
        await images.edit(form, context(), never_disconnects)
    assert (info.value.status, info.value.param) == (400, "image")
    assert transport.sent == []


async def test_a_transcription_in_verbose_json() -> None:
    output = {
        "text": " Hello there.",
        "chunks": [{"timestamp": [0.0, 1.2], "text": " Hello there."}],
        "inferred_languages": ["en"],
    }
    transport = fal_queue("fal-ai/wizper", output, {})
    _, audio = services(transport)
    wav = make_wav(1.5)
    form = Form(
        fields={"model": "fal-ai/wizper", "response_format": "verbose_json"},
        files={"file": [FormFile("file", "talk.wav", "audio/wav", wav)]},
    )
    ctx = context()
    answer = body(await audio.transcribe(form, "transcribe", ctx, never_disconnects))
    assert answer["text"] == "Hello there."
    assert answer["duration"] == pytest.approx(1.5)
    assert [s["text"] for s in answer["segments"]] == [" Hello there."]  # as Whisper's
    sent = orjson.loads(transport.sent[0].body or b"")
    assert sent["audio_url"].startswith("data:audio/wav;base64,")
    assert sent["language"] is None  # wizper detects only when told null
    assert sent["task"] == "transcribe"
    assert ctx.usage.audio_seconds_in == pytest.approx(1.5)
