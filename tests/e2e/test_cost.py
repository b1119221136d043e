"""The cost of every request, through the openai SDK against the simulator as a real server:
the figure the proxy records (on the access-log line, from `context.usage`) per source,
computed as price x units from what the simulator states, and the client never seeing
OpenRouter's cost fields it did not ask for."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fal_openai_proxy.simulator.platform import PRICES
from fal_openai_proxy.simulator.server import SimulatorThread

from ..conftest import CapturedLogs
from ..support.asserts import wait_for
from ..support.servers import FAL_KEY, RunningProxy

Records = Callable[..., list[dict[str, Any]]]
ACCOUNTING = {"cost", "cost_details", "is_byok"}
# simulator/openrouter.py `_usage`: OpenRouter's cost is 1e-5 USD a token there.
ROUTE_PRICE = 0.00001
# simulator/text.py `_usage` (the prompt apps): 1e-6 a prompt token, 2e-6 a completion token.
PROMPT_PRICES = (1e-6, 2e-6)


def recorded(logs: CapturedLogs, request_id: str) -> dict[str, Any]:
    """The access-log line of one request (written when the response has ended)."""

    def find() -> dict[str, Any] | None:
        for line in reversed(logs.lines):
            entry = json.loads(line)
            if entry.get("msg") == "request" and entry.get("request_id") == request_id:
                return dict(entry)
        return None

    return wait_for(find, what=f"the access-log line of {request_id}")


@pytest.fixture(scope="module")
def priced(proxy_factory: Callable[..., RunningProxy], sim: SimulatorThread) -> RunningProxy:
    """A proxy that reads the simulator's unit prices, with chat on fal's OpenAI route for
    `route/*` ids (any other id: the prompt app)."""
    running = proxy_factory(fal_api_url=sim.base_url + "/platform", model_routes="route/*=openai")
    prices = running.state.upstream.unit_prices
    assert prices is not None
    wait_for(lambda: prices.updated_at is not None, what="fal's unit prices")
    return running


@pytest.fixture(scope="module")
def client(priced: RunningProxy, make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client(priced)


def route_cost(usage: Any) -> float:
    return ROUTE_PRICE * (usage.prompt_tokens + usage.completion_tokens)


# -- fal's OpenAI route: OpenRouter's usage.cost -----------------------------------------------


def test_route_chat_records_openrouter_cost_and_hides_it(
    client: openai.OpenAI, captured_logs: CapturedLogs, sim_log: Records
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="route/model", messages=[{"role": "user", "content": "price this"}]
    )
    completion = raw.parse()
    assert completion.usage is not None
    assert not ACCOUNTING & set(completion.usage.model_dump(exclude_none=True))
    assert not ACCOUNTING & set(json.loads(raw.content)["usage"])
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert line["cost_source"] == "openrouter"
    assert line["cost"] == pytest.approx(route_cost(completion.usage))
    sent = sim_log("openai")[-1]["body"]
    assert sent["usage"] == {"include": True}  # asked upstream on every call


def test_route_chat_passes_the_cost_to_a_client_that_asked(
    client: openai.OpenAI, captured_logs: CapturedLogs
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="route/model",
        messages=[{"role": "user", "content": "price this too"}],
        extra_body={"usage": {"include": True}},
    )
    usage = json.loads(raw.content)["usage"]
    assert usage["cost"] == pytest.approx(ROUTE_PRICE * usage["total_tokens"])
    assert "cost_details" in usage
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert (line["cost"], line["cost_source"]) == (usage["cost"], "openrouter")


def test_route_stream_hides_the_cost_and_records_it(
    client: openai.OpenAI, captured_logs: CapturedLogs
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="route/model",
        messages=[{"role": "user", "content": "stream a price"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    usage = chunks[-1].usage
    assert usage is not None
    assert all(not ACCOUNTING & set(c.usage.model_extra or {}) for c in chunks if c.usage)
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert line["cost_source"] == "openrouter"
    assert line["cost"] == pytest.approx(route_cost(usage))


def test_route_stream_sends_usage_with_cost_to_a_client_that_asked(
    client: openai.OpenAI, captured_logs: CapturedLogs
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="route/model",
        messages=[{"role": "user", "content": "stream a price, with cost"}],
        stream=True,
        extra_body={"usage": {"include": True}},
    )
    chunks = list(raw.parse())
    usage = chunks[-1].usage  # OpenRouter's usage chunk, as asked through `usage.include`
    assert usage is not None
    extra = usage.model_extra or {}
    assert extra["cost"] == pytest.approx(route_cost(usage))
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert line["cost"] == extra["cost"]


def test_responses_and_embeddings_record_the_cost_and_hide_it(
    client: openai.OpenAI, captured_logs: CapturedLogs
) -> None:
    raw = client.responses.with_raw_response.create(model="openai/gpt-4.1", input="a response")
    usage = json.loads(raw.content)["usage"]
    assert not ACCOUNTING & set(usage)
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert line["cost_source"] == "openrouter"
    assert line["cost"] == pytest.approx(
        ROUTE_PRICE * (usage["input_tokens"] + usage["output_tokens"])
    )
    raw = client.embeddings.with_raw_response.create(model="openai/text-embedding-3-small",
                                                     input=["one two", "three"])  # fmt: skip
    usage = json.loads(raw.content)["usage"]
    assert not ACCOUNTING & set(usage)
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert (line["cost"], line["cost_source"]) == (pytest.approx(1e-7 * 3), "openrouter")


def test_responses_stream_hides_the_cost(
    client: openai.OpenAI, captured_logs: CapturedLogs
) -> None:
    raw = client.responses.with_raw_response.create(
        model="openai/gpt-4.1", input="a streamed response", stream=True
    )
    events = list(raw.parse())
    final = events[-1].response
    assert final.usage is not None
    assert not ACCOUNTING & set(final.usage.model_extra or {})
    line = recorded(captured_logs, raw.headers["x-request-id"])
    expected = ROUTE_PRICE * (final.usage.input_tokens + final.usage.output_tokens)
    assert (line["cost"], line["cost_source"]) == (pytest.approx(expected), "openrouter")


# -- the prompt apps ---------------------------------------------------------------------------


def test_prompt_app_records_openrouter_cost_from_its_usage(
    client: openai.OpenAI, captured_logs: CapturedLogs
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "a prompt app"}]
    )
    usage = raw.parse().usage
    assert usage is not None
    expected = PROMPT_PRICES[0] * usage.prompt_tokens + PROMPT_PRICES[1] * usage.completion_tokens
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert (line["cost"], line["cost_source"]) == (pytest.approx(expected), "openrouter")


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_completions_record_the_prompt_apps_cost(
    client: openai.OpenAI, captured_logs: CapturedLogs, stream: bool
) -> None:
    raw = client.completions.with_raw_response.create(
        model="google/gemini-2.5-flash",
        prompt="complete this",
        stream=stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )
    parsed = raw.parse()
    usage = [c for c in parsed if c.usage][-1].usage if stream else parsed.usage  # type: ignore[union-attr]
    assert usage is not None
    expected = PROMPT_PRICES[0] * usage.prompt_tokens + PROMPT_PRICES[1] * usage.completion_tokens
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert (line["cost"], line["cost_source"]) == (pytest.approx(expected), "openrouter")


def test_openrouter_cost_wins_over_billable_units(
    client: openai.OpenAI, captured_logs: CapturedLogs
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="google/gemini-2.5-flash",
        messages=[{"role": "user", "content": 'both [[sim {"billable_units": 7}]]'}],
    )
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert line["cost_source"] == "openrouter"


@pytest.mark.parametrize("stream", [False, True])
def test_billable_units_price_a_prompt_app_without_openrouter_cost(
    client: openai.OpenAI, captured_logs: CapturedLogs, stream: bool
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="google/gemini-2.5-flash",
        messages=[
            {"role": "user", "content": 'units [[sim {"billable_units": 7, "no_cost": true}]]'}
        ],
        stream=stream,
    )
    if stream:
        list(raw.parse())
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert line["cost_source"] == "billable_units"
    assert line["cost"] == pytest.approx(7 * PRICES["openrouter/router"][0])


# -- media: fal's billable units x fal's unit price --------------------------------------------


def test_images_priced_by_billable_units(
    client: openai.OpenAI, captured_logs: CapturedLogs
) -> None:
    raw = client.images.with_raw_response.generate(model="fal-ai/flux/dev", prompt="two", n=2)
    assert len(raw.parse().data or []) == 2
    line = recorded(captured_logs, raw.headers["x-request-id"])
    # The simulator's 8x8 images are billed one megapixel each (rounded up).
    assert line["cost_source"] == "billable_units"
    assert line["cost"] == pytest.approx(2 * PRICES["fal-ai/flux/dev"][0])


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


def test_audio_priced_by_billable_units(client: openai.OpenAI, captured_logs: CapturedLogs) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("clip.wav", wav_bytes(1.5), "audio/wav")
    )
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert line["cost_source"] == "billable_units"
    assert line["cost"] == pytest.approx(1.5 * PRICES["fal-ai/whisper"][0])
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="hello there", response_format="wav"
    ) as response:
        audio = response.read()
        request_id = response.headers["x-request-id"]
    assert audio.startswith(b"RIFF")
    line = recorded(captured_logs, request_id)
    # Kokoro bills 1000 characters, at least one (docs/fal-protocol.md §14.2).
    assert line["cost_source"] == "billable_units"
    assert line["cost"] == pytest.approx(PRICES["fal-ai/kokoro/american-english"][0])


def test_fals_own_clients_calls_are_priced_by_billable_units(
    priced: RunningProxy, http: httpx.Client, captured_logs: CapturedLogs
) -> None:
    """/api/fal/proxy: the result fetch carries fal's billable units (docs/fal-protocol.md
    §14.2), priced at the submitted app's unit price."""

    def relay(method: str, target: str, body: Any = None) -> httpx.Response:
        headers = {"x-fal-target-url": target}
        return http.request(method, priced.base_url + "/api/fal/proxy", headers=headers,
                            json=body)  # fmt: skip

    submitted = relay(
        "POST", "https://queue.fal.run/fal-ai/flux/dev", {"prompt": "x", "num_images": 2}
    )
    assert submitted.status_code == 200, submitted.text
    # fal's URLs (the simulator's own answer names its own host, which the proxy refuses).
    url = f"https://queue.fal.run/fal-ai/flux/requests/{submitted.json()['request_id']}"
    wait_for(lambda: relay("GET", url + "/status").json()["status"] == "COMPLETED")
    result = relay("GET", url)
    assert result.status_code == 200 and len(result.json()["images"]) == 2
    line = recorded(captured_logs, result.headers["x-request-id"])
    assert line["cost_source"] == "billable_units"
    assert line["cost"] == pytest.approx(2 * PRICES["fal-ai/flux/dev"][0])


def test_pricing_is_read_in_the_background_with_the_server_key(
    client: openai.OpenAI, sim: SimulatorThread, sim_log: Records
) -> None:
    fetches = [r for r in sim.state.log if r["kind"] == "pricing"]
    assert fetches, "the proxy never read fal's unit prices"
    assert {r["key"] for r in fetches} == {FAL_KEY}  # the server's key, never a client's
    asked = {i for r in fetches for v in r["query"]["endpoint_id"] for i in v.split(",")}
    assert {"fal-ai/flux/dev", "openrouter/router", "fal-ai/whisper"} <= asked
    client.images.generate(model="fal-ai/flux/schnell", prompt="no pricing call now")
    assert sim_log("pricing") == []  # never on the request path


# -- the price table, and unknown ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tabled(
    proxy_factory: Callable[..., RunningProxy], tmp_path_factory: pytest.TempPathFactory
) -> RunningProxy:
    """No fal unit prices (FAL_PRICING_REFRESH_INTERVAL=0) and a PRICES_FILE."""
    table = tmp_path_factory.mktemp("prices") / "prices.yaml"
    table.write_text(
        "read_on: '2026-12-07'\n"
        "models:\n"
        "  google/gemini-2.5-flash: {input_token: 1.0e-6, output_token: 3e-6}\n"
        "  fal-ai/flux/dev: {megapixel: 0.5}\n"
    )
    return proxy_factory(prices_file=table, fal_pricing_refresh_interval=0)


def test_price_table_prices_what_no_better_source_does(
    tabled: RunningProxy, make_client: Callable[..., openai.OpenAI], captured_logs: CapturedLogs
) -> None:
    client = make_client(tabled)
    raw = client.chat.completions.with_raw_response.create(
        model="google/gemini-2.5-flash",
        messages=[{"role": "user", "content": 'tabled [[sim {"no_cost": true}]]'}],
    )
    usage = raw.parse().usage
    assert usage is not None
    line = recorded(captured_logs, raw.headers["x-request-id"])
    expected = 1e-6 * usage.prompt_tokens + 3e-6 * usage.completion_tokens
    assert (line["cost"], line["cost_source"]) == (pytest.approx(expected), "price_table")
    # fal sends billable units, but without a unit price they cannot price the images.
    raw_images = client.images.with_raw_response.generate(model="fal-ai/flux/dev", prompt="x")
    line = recorded(captured_logs, raw_images.headers["x-request-id"])
    assert (line["cost"], line["cost_source"]) == (pytest.approx(0.5), "price_table")


def test_unknown_cost_is_null_never_zero(
    tabled: RunningProxy, make_client: Callable[..., openai.OpenAI], captured_logs: CapturedLogs
) -> None:
    client = make_client(tabled)
    raw = client.chat.completions.with_raw_response.create(
        model="meta-llama/llama-4-maverick",  # in no table, and no OpenRouter cost
        messages=[{"role": "user", "content": 'unknown [[sim {"no_cost": true}]]'}],
    )
    assert raw.parse().usage is not None  # tokens are known; their price is not
    line = recorded(captured_logs, raw.headers["x-request-id"])
    assert line["cost"] is None
    assert line["cost_source"] is None
    raw_images = client.images.with_raw_response.generate(model="fal-ai/ideogram/v2", prompt="x")
    line = recorded(captured_logs, raw_images.headers["x-request-id"])
    assert (line["cost"], line["cost_source"]) == (None, None)


def test_a_bad_prices_file_stops_start_up_naming_it(tmp_path: Path) -> None:
    from fal_openai_proxy.base.settings import Settings
    from fal_openai_proxy.serve.app import ConfigError, create_app

    table = tmp_path / "prices.yaml"
    table.write_text("models:\n  some/model: {input_tokens: 1}\n")
    settings = Settings(_env_file=None, fal_key=FAL_KEY, prices_file=table)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"PRICES_FILE .*some/model.*input_tokens"):
        create_app(settings)


async def test_unit_prices_fetch_an_id_first_seen_on_a_request(sim: SimulatorThread) -> None:
    """The request path only notes an unknown id; the background task fetches it soon
    (and nothing for an id fal does not price)."""
    from fal_openai_proxy.base.metrics import Metrics
    from fal_openai_proxy.fal.http import HttpClient
    from fal_openai_proxy.fal.pricing import UnitPrices

    http = HttpClient(connect_timeout=5, max_idle_per_host=4, user_agent="test")
    metrics = Metrics()
    prices = UnitPrices(http, api_url=sim.base_url + "/platform", key=FAL_KEY, interval=3600,
                        endpoint_ids=["fal-ai/flux/dev"], metrics=metrics)  # fmt: skip
    prices.start()
    try:
        for _ in range(200):
            if prices.updated_at is not None:
                break
            await asyncio.sleep(0.02)
        assert prices.price("fal-ai/flux/dev") is not None
        assert prices.price("fal-ai/wizper") is None  # noted, not fetched on this path
        for _ in range(300):
            if prices.price("fal-ai/wizper") is not None:
                break
            await asyncio.sleep(0.02)
        found = prices.price("fal-ai/wizper")
        assert found is not None
        assert (found.unit_price, found.unit) == PRICES["fal-ai/wizper"]
        assert prices.price("nobody/prices-this") is None
    finally:
        await prices.stop()
        await http.close()


async def test_unit_prices_keep_the_known_ones_when_fal_fails(sim: SimulatorThread) -> None:
    from fal_openai_proxy.base.metrics import Metrics
    from fal_openai_proxy.fal.http import HttpClient
    from fal_openai_proxy.fal.pricing import UnitPrices

    http = HttpClient(connect_timeout=5, max_idle_per_host=4, user_agent="test")
    metrics = Metrics()
    prices = UnitPrices(http, api_url=sim.base_url + "/platform", key=FAL_KEY, interval=3600,
                        endpoint_ids=["fal-ai/flux/dev"], metrics=metrics)  # fmt: skip
    try:
        assert await prices.refresh()
        prices._api_url = sim.base_url + "/platform/fail-503"  # fal's platform API down
        assert not await prices.refresh()
        assert prices.price("fal-ai/flux/dev") is not None
        assert "fal_proxy_pricing_refresh_failures_total 1.0" in metrics.render().decode()
    finally:
        await http.close()
