"""Reading fal's JSON: every body and event must be an object."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import FalBrokenError


def loads_object(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise FalBrokenError("fal sent data that is not JSON") from None
    if not isinstance(value, dict):
        raise FalBrokenError("fal sent JSON that is not an object")
    return value
