"""fal's platform APIs for money: unit prices (`GET {FAL_API_URL}/v1/models/pricing`) and the
account's balance (`GET {FAL_API_URL}/v1/account/billing?expand=credits`).

Wire details from docs/fal-protocol.md §14.1 and §14.3: `Authorization: Key …` is required;
`endpoint_id` takes 1-50 ids, comma-separated; the answer is
`{"prices": [{"endpoint_id", "unit_price", "unit", "currency"}], "next_cursor", "has_more"}`.
Prices can be per account ("custom pricing or discounts"), so they are read with the server's
own key, never a client's.

`UnitPrices` keeps them in memory and refreshes them in a background task: the request path
only reads a dict (and notes an id it has not seen, for the next fetch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from ..base.metrics import Metrics
from ..base.tasks import cancel_and_wait
from .errors import FalError
from .transport import Transport
from .wire import is_success

log = logging.getLogger(__name__)
PRICING_PATH = "/v1/models/pricing"
BILLING_PATH = "/v1/account/billing"
MAX_IDS = 50  # endpoint ids per pricing call (docs/fal-protocol.md §14.1)
MAX_PAGES = 20  # pages followed per batch; the documented answers have one
CALL_TIMEOUT = 30.0  # seconds for one call, connection included
RETRY_AFTER_FAILURE = 60.0  # seconds; sooner than the interval, so start-up blips heal fast
NEW_ID_DELAY = 1.0  # seconds to gather ids first seen together into one call


class PlatformCallError(Exception):
    """A platform call failed; `str()` says why (never the key). `status` is fal's HTTP
    status when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class UnitPrice:
    endpoint_id: str
    unit_price: float  # USD per unit
    unit: str  # fal's word for the unit: "image", "megapixels", "second", ...


@dataclass(frozen=True, slots=True)
class Balance:
    username: str | None
    current_balance: float
    currency: str


async def fetch_unit_prices(
    http: Transport, api_url: str, key: str, endpoint_ids: Iterable[str]
) -> dict[str, UnitPrice]:
    """The USD prices fal gives for `endpoint_ids` (ids without one are left out)."""
    ids = sorted(set(endpoint_ids))
    prices: dict[str, UnitPrice] = {}
    for start in range(0, len(ids), MAX_IDS):
        batch = ",".join(ids[start : start + MAX_IDS])
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = {"endpoint_id": batch}
            if cursor is not None:
                params["cursor"] = cursor
            page = await _get_json(http, f"{api_url}{PRICING_PATH}?{urlencode(params)}", key)
            rows = page.get("prices")
            if not isinstance(rows, list):
                raise PlatformCallError("the pricing API answered without a `prices` list")
            for row in rows:
                if (price := _unit_price(row)) is not None:
                    prices[price.endpoint_id] = price
            cursor = page.get("next_cursor") if page.get("has_more") is True else None
            if not isinstance(cursor, str) or not cursor:
                break
    return prices


def _unit_price(row: Any) -> UnitPrice | None:
    """One row, if it is a usable USD price (a row in another currency cannot give USD)."""
    if not isinstance(row, dict):
        return None
    endpoint_id, price, unit = row.get("endpoint_id"), row.get("unit_price"), row.get("unit")
    currency = row.get("currency", "USD")
    if not isinstance(endpoint_id, str) or not isinstance(currency, str):
        return None
    if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
        return None
    if currency.upper() != "USD":
        return None
    return UnitPrice(endpoint_id, float(price), unit if isinstance(unit, str) else "")


async def fetch_balance(http: Transport, api_url: str, key: str) -> Balance:
    """The account's credit balance. A key without the `billing:usage:read` scope gets 403
    (docs/fal-protocol.md §14.3): PlatformCallError with status 403."""
    page = await _get_json(http, f"{api_url}{BILLING_PATH}?expand=credits", key)
    credits = page.get("credits")
    if not isinstance(credits, Mapping):
        raise PlatformCallError("the billing API answered without `credits`")
    balance = credits.get("current_balance")
    if isinstance(balance, str):
        with contextlib.suppress(ValueError):
            balance = float(balance)
    if isinstance(balance, bool) or not isinstance(balance, int | float):
        raise PlatformCallError("the billing API answered without a numeric balance")
    currency = credits.get("currency")
    username = page.get("username")
    return Balance(
        username if isinstance(username, str) else None,
        float(balance),
        currency if isinstance(currency, str) and len(currency) == 3 else "USD",
    )


async def _get_json(http: Transport, url: str, key: str) -> Mapping[str, Any]:
    headers = {"Authorization": f"Key {key}", "Accept": "application/json"}
    try:
        async with asyncio.timeout(CALL_TIMEOUT):
            reply = await http.send("GET", url, headers)
    except TimeoutError:
        raise PlatformCallError(f"no answer within {CALL_TIMEOUT:g} s") from None
    except FalError as exc:
        raise PlatformCallError(f"cannot reach fal's platform API ({exc.kind})") from None
    if not is_success(reply.status):
        raise PlatformCallError(f"fal's platform API answered HTTP {reply.status}", reply.status)
    try:
        page = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        raise PlatformCallError("fal's platform API answered with invalid JSON") from None
    if not isinstance(page, dict):
        raise PlatformCallError("fal's platform API answered with something not an object")
    return page


class UnitPrices:
    """Unit prices by fal endpoint id, refreshed every `interval` seconds in the background;
    an id first seen on a request is fetched within about a second."""

    def __init__(
        self,
        http: Transport,
        *,
        api_url: str,
        key: str,
        interval: float,
        endpoint_ids: Iterable[str],
        metrics: Metrics,
    ) -> None:
        self._http = http
        self._api_url = api_url
        self._key = key  # the server's FAL_KEY, never a client's
        self._interval = interval
        self._metrics = metrics
        self._wanted: set[str] = set(endpoint_ids)
        self._prices: dict[str, UnitPrice] = {}
        self._asked: set[str] = set()  # ids the last fetches asked for
        self._new = asyncio.Event()
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self.updated_at: float | None = None

    def price(self, endpoint_id: str) -> UnitPrice | None:
        """The cached price (the request path: a dict lookup, never a call)."""
        found = self._prices.get(endpoint_id)
        if found is None and endpoint_id not in self._wanted:
            self._wanted.add(endpoint_id)
            self._new.set()  # the refresher asks for it soon
        return found

    async def refresh(self, only_new: bool = False) -> bool:
        ids = self._wanted - self._asked if only_new else set(self._wanted)
        if not ids:
            return True
        try:
            prices = await fetch_unit_prices(self._http, self._api_url, self._key, ids)
        except Exception as exc:  # PlatformCallError; anything else must not end the task
            reason = str(exc) if isinstance(exc, PlatformCallError) else type(exc).__name__
            self._metrics.pricing_refresh_failures.inc()
            if not self._failing:
                log.warning("fal pricing refresh failed: %s; keeping the prices known", reason)
            self._failing = True
            return False
        if self._failing:
            log.info("fal pricing refresh works again")
        self._failing = False
        self._asked |= ids
        self._prices = {**self._prices, **prices}  # a new dict: readers never see it half-made
        self.updated_at = asyncio.get_running_loop().time()
        log.debug("fal unit prices: %d of %d endpoints priced", len(prices), len(ids))
        return True

    async def run(self) -> None:
        ok = await self.refresh()
        while True:
            wait = self._interval if ok else min(self._interval, RETRY_AFTER_FAILURE)
            try:
                async with asyncio.timeout(wait):
                    await self._new.wait()
            except TimeoutError:
                ok = await self.refresh()
                continue
            self._new.clear()  # ids noted from here on wake the next round
            await asyncio.sleep(NEW_ID_DELAY)  # gather the ids that arrive together
            ok = await self.refresh(only_new=True)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="fal-pricing")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
