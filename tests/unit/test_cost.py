"""The pure cost arithmetic (translate/cost.py), the table shipped with the package, and the
wire detail it reads (fal's billable units)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from fal_openai_proxy.fal.apps import ANY_LLM_MODELS
from fal_openai_proxy.fal.media_apps import MEDIA_APPS
from fal_openai_proxy.fal.video_apps import VIDEO_APPS
from fal_openai_proxy.fal.wire import billable_units
from fal_openai_proxy.services.catalog import ROUTER_MODELS
from fal_openai_proxy.services.pricing import load_price_table
from fal_openai_proxy.translate.cost import (
    Measure,
    ModelPrice,
    PriceTableError,
    asked_for_accounting,
    billed_megapixels,
    choose_cost,
    parse_price_table,
    table_cost,
    with_accounting,
)
from fal_openai_proxy.translate.openrouter import ChatChunkRepair

TOKENS = ModelPrice(input_token=1e-6, output_token=2e-6)
USED = Measure(input_tokens=100, output_tokens=10)


def test_sources_in_order_openrouter_units_table_unknown() -> None:
    def cost(**kw: Any) -> tuple[float | None, str | None]:
        args = {"reported": None, "billable_units": None, "unit_price": None,
                "table_price": TOKENS, "used": USED} | kw  # fmt: skip
        return choose_cost(**args)

    assert cost(reported=0.5, billable_units=3, unit_price=0.1) == (0.5, "openrouter")
    assert cost(billable_units=3, unit_price=0.1) == (pytest.approx(0.3), "billable_units")
    assert cost(billable_units=3) == (pytest.approx(100e-6 + 20e-6), "price_table")
    assert cost(unit_price=0.1) == (pytest.approx(120e-6), "price_table")  # units needed
    assert cost(table_price=None) == (None, None)
    assert cost(reported=0.0) == (0.0, "openrouter")  # a real zero stays a zero


def test_a_table_price_needs_every_amount_it_prices() -> None:
    assert table_cost(TOKENS, Measure(input_tokens=100)) is None
    assert table_cost(ModelPrice(), USED) is None  # prices nothing
    assert table_cost(ModelPrice(request=0.01), Measure()) == 0.01
    both = ModelPrice(image=0.04, megapixel=0.01)
    assert table_cost(both, Measure(images=2, megapixels=3)) == pytest.approx(0.11)
    assert table_cost(ModelPrice(audio_second=0.001), Measure(audio_seconds=90)) == 0.09


def test_megapixels_are_rounded_up_per_image() -> None:
    assert billed_megapixels([(1024, 1024)]) == 1
    assert billed_megapixels([(1024, 1025), (8, 8)]) == 3
    assert billed_megapixels([(2048, 2048)]) == 4
    assert billed_megapixels([(1024, None)]) is None
    assert billed_megapixels([(True, 5)]) is None
    assert billed_megapixels([]) == 0


def test_price_table_parsing() -> None:
    table = parse_price_table(
        {"read_on": "2026-12-07", "models": {"m": {"input_token": "3e-7", "image": 1}}}, "t"
    )
    assert table.models["m"] == ModelPrice(input_token=3e-7, image=1.0)
    assert table.read_on == "2026-12-07"
    assert table.find(None, "x", "m") is table.models["m"]
    assert table.find("x") is None
    bad: list[tuple[Any, str]] = [
        ([], "a mapping with a `models`"),
        ({"models": {"m": {"input_tokens": 1}}}, "unknown field 'input_tokens'"),
        ({"models": {"m": {"image": -1}}}, "image must be a non-negative number"),
        ({"models": {"m": {"image": "cheap"}}}, "image must be"),
        ({"models": {"m": {"image": math.inf}}}, "image must be"),
        ({"models": {"m": {}}}, "expected a mapping"),
        ({"models": {}, "extra": 1}, "unknown top-level key 'extra'"),
    ]
    for raw, message in bad:
        with pytest.raises(PriceTableError, match="^t: .*" + message.replace("(", r"\(")):
            parse_price_table(raw, "t")


def test_the_shipped_table_prices_only_built_in_models() -> None:
    table = load_price_table(None)
    assert table.read_on is not None and table.source == "built-in"
    known = set(ROUTER_MODELS) | set(ANY_LLM_MODELS) | set(MEDIA_APPS) | set(VIDEO_APPS)
    assert set(table.models) <= known, set(table.models) - known
    assert table.models["fal-ai/flux/dev"] == ModelPrice(megapixel=0.025)
    # Chat entries price both directions; no model is priced at a made-up zero.
    for name, price in table.models.items():
        if price.input_token is not None:
            assert price.output_token is not None, name
        amounts = (price.input_token, price.output_token, price.image, price.megapixel,
                   price.request, price.video_second)  # fmt: skip
        assert all(v is None or v > 0 for v in amounts), name


def test_a_prices_file_in_json(tmp_path: Any) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes(orjson.dumps({"models": {"my/model": {"request": 0.002}}}))
    assert load_price_table(path).models["my/model"] == ModelPrice(request=0.002)
    path.write_text("{not json")
    with pytest.raises(PriceTableError, match=f"^PRICES_FILE {path}: JSONDecodeError"):
        load_price_table(path)
    with pytest.raises(PriceTableError, match="FileNotFoundError"):
        load_price_table(tmp_path / "missing.yaml")


def test_usage_accounting_asked_and_added() -> None:
    body = {"model": "m", "usage": {"include": False, "other": 1}}
    assert not asked_for_accounting(body)
    sent = with_accounting(body)
    assert sent["usage"] == {"include": True, "other": 1}
    assert body["usage"]["include"] is False  # the client's body is left alone
    assert asked_for_accounting(sent)
    assert with_accounting({"model": "m"})["usage"] == {"include": True}


@pytest.mark.parametrize(
    ("header", "units"),
    [("3", 3.0), ("3.008", 3.008), ("0", 0.0), ("-1", None), ("inf", None), ("nan", None),
     ("three", None), (None, None)],
)  # fmt: skip
def test_billable_units_header(header: str | None, units: float | None) -> None:
    headers = {} if header is None else {"x-fal-billable-units": header}
    assert billable_units(headers) == units


def test_stream_usage_loses_the_cost_unless_asked() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.25,
             "cost_details": {"upstream_inference_cost": None}, "is_byok": False}  # fmt: skip
    finish = orjson.dumps(
        {"id": "g", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    usage_chunk = orjson.dumps({"id": "g", "choices": [], "usage": usage})
    for keep in (False, True):
        repair = ChatChunkRepair("m", include_usage=True, keep_accounting=keep)
        repair.feed(finish)
        sent = orjson.loads(repair.feed(usage_chunk)[6:])
        assert ("cost" in sent["usage"]) is keep
        assert ("cost_details" in sent["usage"]) is keep
        assert repair.reported == 0.25
        assert (repair.used.input_tokens, repair.used.output_tokens) == (3, 2)
