"""What every authenticated fal call sends and accepts: the `Key` scheme and any 2xx.

fal's status endpoint answers 202 while a job runs (docs/fal-protocol.md §4.1), so no call
tests for exactly 200; fal-js and fal_client send `Authorization: Key …` (docs/fal-protocol.md §2).
"""

from __future__ import annotations


def key_headers(key: str, accept: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Key {key}", "Content-Type": "application/json", "Accept": accept}


def is_success(status: int) -> bool:
    return 200 <= status < 300
