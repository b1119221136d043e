"""What every authenticated fal call sends and accepts: the `Key` scheme and any 2xx.

fal's status endpoint answers 202 while a job runs (docs/fal-protocol.md §4.1), so no call
tests for exactly 200; fal-js and fal_client send `Authorization: Key …` (docs/fal-protocol.md §2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# fal's server-side start timeout: the seconds fal may spend before the app begins (queue
# wait, retries, routing); both clients refuse values of 1 s or less (docs/fal-protocol.md §2).
REQUEST_TIMEOUT_HEADER = "X-Fal-Request-Timeout"
MIN_REQUEST_TIMEOUT = 1


def key_headers(
    key: str, accept: str = "application/json", time_left: float | None = None
) -> dict[str, str]:
    """`time_left`: on a call that starts work, the seconds the request has left, sent as
    fal's start timeout so that fal drops work nobody will read: whole seconds, strictly
    fewer than are left, so that fal gives up before the proxy does."""
    headers = {"Authorization": f"Key {key}", "Content-Type": "application/json", "Accept": accept}
    if time_left is not None and math.isfinite(time_left):
        seconds = math.ceil(time_left) - 1
        if seconds > MIN_REQUEST_TIMEOUT:
            headers[REQUEST_TIMEOUT_HEADER] = str(seconds)
    return headers


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
