"""What every authenticated fal call sends and accepts: the `Key` scheme and any 2xx.

fal's status endpoint answers 202 while a job runs (docs/fal-protocol.md §4.1), so no call
tests for exactly 200; fal-js and fal_client send `Authorization: Key …` (docs/fal-protocol.md §2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def key_headers(key: str, accept: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Key {key}", "Content-Type": "application/json", "Accept": accept}


def is_success(status: int) -> bool:
    return 200 <= status < 300


BILLABLE_UNITS_HEADER = "x-fal-billable-units"


def billable_units(headers: Mapping[str, str]) -> float | None:
    """fal's `x-fal-billable-units` answer header: how many of the app's priced units the
    request used (docs/fal-protocol.md §14.2). Absent or malformed: None."""
    raw = headers.get(BILLABLE_UNITS_HEADER)
    if raw is None:
        return None
    try:
        units = float(raw)
    except ValueError:
        return None
    return units if math.isfinite(units) and units >= 0 else None
