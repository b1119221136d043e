"""The cost of one request in USD, from the best source there is (pure: no I/O).

1. OpenRouter's own figure, `usage.cost`, on fal's OpenAI route and in the prompt apps' usage
   (docs/fal-protocol.md §14.4): source "openrouter";
2. fal's `x-fal-billable-units` answer header times the app's unit price from fal's pricing
   API (docs/fal-protocol.md §14.1, §14.2): source "billable_units";
3. the price table (PRICES_FILE, else the one shipped with the package) times what the
   request used: source "price_table";
4. otherwise None: unknown, never a made-up 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

OPENROUTER = "openrouter"
BILLABLE_UNITS = "billable_units"
PRICE_TABLE = "price_table"
# What OpenRouter's usage accounting adds to a `usage` object (docs/fal-protocol.md §14.4):
# a client that did not ask for it does not get it.
ACCOUNTING_FIELDS = ("cost", "cost_details", "is_byok")
# fal bills images "by rounding up to the nearest megapixel"; its own example of per-megapixel
# billing divides by 1024 * 1024 (docs/fal-protocol.md §14.3).
PIXELS_PER_MEGAPIXEL = 1024 * 1024


class PriceTableError(ValueError):
    """A price table that cannot be used; the message names the file, model and field."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per unit; a field left out is not charged (and not needed)."""

    input_token: float | None = None
    output_token: float | None = None
    image: float | None = None
    megapixel: float | None = None
    audio_second: float | None = None
    video_second: float | None = None
    request: float | None = None


PRICE_FIELDS = tuple(f.name for f in fields(ModelPrice))


@dataclass(frozen=True, slots=True)
class PriceTable:
    models: Mapping[str, ModelPrice]
    read_on: str | None = None  # the date its prices were read
    source: str = "built-in"  # "built-in" or the PRICES_FILE path

    def find(self, *names: str | None) -> ModelPrice | None:
        """The first of `names` the table prices (the model as named, then the fal app)."""
        for name in names:
            if name and (price := self.models.get(name)) is not None:
                return price
        return None


@dataclass(frozen=True, slots=True)
class Measure:
    """What one request used, as far as it is known (None: not known)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    images: int | None = None
    megapixels: float | None = None
    audio_seconds: float | None = None
    video_seconds: float | None = None


def table_cost(price: ModelPrice, used: Measure) -> float | None:
    """price x use over every priced unit; None if a priced unit's amount is unknown, or if
    the entry prices nothing."""
    total = 0.0
    priced = False
    for per_unit, amount in (
        (price.input_token, used.input_tokens),
        (price.output_token, used.output_tokens),
        (price.image, used.images),
        (price.megapixel, used.megapixels),
        (price.audio_second, used.audio_seconds),
        (price.video_second, used.video_seconds),
        (price.request, 1),
    ):
        if per_unit is None:
            continue
        if amount is None:
            return None
        total += per_unit * amount
        priced = True
    return total if priced else None


def choose_cost(
    *,
    reported: float | None,
    billable_units: float | None,
    unit_price: float | None,
    table_price: ModelPrice | None,
    used: Measure,
) -> tuple[float | None, str | None]:
    """(cost in USD, its source), by the order of this module's docstring."""
    if reported is not None:
        return reported, OPENROUTER
    if billable_units is not None and unit_price is not None:
        return billable_units * unit_price, BILLABLE_UNITS
    if table_price is not None and (cost := table_cost(table_price, used)) is not None:
        return cost, PRICE_TABLE
    return None, None


def usd(value: Any) -> float | None:
    """A finite, non-negative amount (a JSON number), else None."""
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        return None
    amount = float(value)
    return amount if math.isfinite(amount) and amount >= 0 else None


_NUMBER = (int, float)


def reported_cost(usage: Any) -> float | None:
    """OpenRouter's `usage.cost` (USD credits), if the usage carries one."""
    if usage is None or not (type(usage) is dict or isinstance(usage, Mapping)):
        return None
    return usd(usage.get("cost"))


def asked_for_accounting(body: Mapping[str, Any]) -> bool:
    """Whether the client itself sent OpenRouter's `usage: {include: true}`."""
    usage = body.get("usage")
    return isinstance(usage, Mapping) and usage.get("include") is True


def with_accounting(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body asking OpenRouter for its usage accounting (docs/fal-protocol.md §14.4)."""
    usage = body.get("usage")
    merged = dict(usage) if isinstance(usage, Mapping) else {}
    merged["include"] = True
    return {**body, "usage": merged}


def strip_accounting(usage: Any) -> None:
    """Drop OpenRouter's accounting fields from a `usage` object (in place)."""
    if isinstance(usage, dict):
        for name in ACCOUNTING_FIELDS:
            usage.pop(name, None)


def billed_megapixels(sizes: Iterable[tuple[Any, Any]]) -> float | None:
    """Megapixels as fal bills them: each image rounded up to a whole megapixel (at least 1).
    None if any image's size is unknown."""
    total = 0
    for width, height in sizes:
        if not (_positive_int(width) and _positive_int(height)):
            return None
        total += max(1, math.ceil(width * height / PIXELS_PER_MEGAPIXEL))
    return float(total)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# -- reading a table ---------------------------------------------------------------------------


def parse_price_table(raw: Any, where: str) -> PriceTable:
    """`{read_on?, models: {model: {field: USD per unit}}}` (YAML or JSON, already parsed).
    Every problem is a PriceTableError naming `where`, the model and the field."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("models"), Mapping):
        raise PriceTableError(f"{where}: expected a mapping with a `models` mapping")
    unknown = set(raw) - {"read_on", "models"}
    if unknown:
        raise PriceTableError(f"{where}: unknown top-level key {sorted(unknown)[0]!r}")
    read_on = raw.get("read_on")
    models = {
        str(name): _model_price(entry, f"{where}: model {name!r}")
        for name, entry in raw["models"].items()
    }
    return PriceTable(models, None if read_on is None else str(read_on), where)


def _model_price(entry: Any, where: str) -> ModelPrice:
    if not isinstance(entry, Mapping) or not entry:
        raise PriceTableError(f"{where}: expected a mapping of {', '.join(PRICE_FIELDS)}")
    values: dict[str, float] = {}
    for name, value in entry.items():
        if name not in PRICE_FIELDS:
            raise PriceTableError(
                f"{where}: unknown field {name!r} (fields: {', '.join(PRICE_FIELDS)})"
            )
        amount = _amount(value)
        if amount is None:
            raise PriceTableError(f"{where}: {name} must be a non-negative number of USD")
        values[name] = amount
    return ModelPrice(**values)


def _amount(value: Any) -> float | None:
    if isinstance(value, str):
        # YAML 1.1 reads `3e-7` (no dot) as a string: accept the number it spells.
        try:
            value = float(value)
        except ValueError:
            return None
    return usd(value)
