"""What each request cost: the sources of `translate/cost.py` put together, filled into
`context.usage` by the service that served the request. Nothing here waits on anything: fal's
unit prices are a dict kept fresh in the background (`fal/pricing.py`), the table is read at
start-up.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Protocol

import yaml

from ..fal.pricing import UnitPrice
from ..serve.context import Usage
from ..translate.cost import Measure, PriceTable, PriceTableError, choose_cost, parse_price_table

BUILT_IN = "built-in"


class UnitPriceSource(Protocol):
    def price(self, endpoint_id: str) -> UnitPrice | None: ...


def load_price_table(path: Path | None) -> PriceTable:
    """PRICES_FILE (JSON or YAML), else the table shipped in the package (data/prices.yaml).
    Any problem is a PriceTableError whose one-line message names the file."""
    if path is None:
        text = resources.files("fal_openai_proxy").joinpath("data", "prices.yaml").read_text()
        return parse_price_table(yaml.safe_load(text), BUILT_IN)
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise PriceTableError(f"PRICES_FILE {path}: {type(exc).__name__}: {reason}") from None
    return parse_price_table(raw, f"PRICES_FILE {path}")


class CostMeter:
    """Settles a request's usage: its counts, and its cost with the source of the figure."""

    def __init__(self, table: PriceTable, unit_prices: UnitPriceSource | None = None) -> None:
        self.table = table
        self.unit_prices = unit_prices  # fal's pricing API; None without a server FAL_KEY

    def settle(
        self,
        usage: Usage,
        *,
        model: str | None,
        used: Measure,
        reported: float | None = None,
    ) -> None:
        """`reported`: OpenRouter's own cost; `usage.billable_units` and `usage.fal_app` are
        the service's already."""
        # Counts the service measured; what it set itself (audio seconds) stays.
        if used.input_tokens is not None:
            usage.input_tokens = used.input_tokens
        if used.output_tokens is not None:
            usage.output_tokens = used.output_tokens
        if used.images is not None:
            usage.images = used.images
        if used.video_seconds is not None:
            usage.video_seconds = used.video_seconds
        unit_price = None
        if usage.billable_units is not None and usage.fal_app and self.unit_prices is not None:
            found = self.unit_prices.price(usage.fal_app)
            unit_price = found.unit_price if found is not None else None
        usage.cost, usage.cost_source = choose_cost(
            reported=reported,
            billable_units=usage.billable_units,
            unit_price=unit_price,
            table_price=self.table.find(model, usage.fal_app),
            used=used,
        )
