"""fal's platform API: the model list (`GET {FAL_API_URL}/v1/models`).

Wire details from docs/fal-protocol.md §11, which cites https://fal.ai/docs/platform-apis/v1/models
and the OpenAPI document https://fal.ai/docs/api-reference/platform-apis/openapi/v1.json
("Model search", server `https://api.fal.ai/v1`): auth optional (`Authorization: Key …` only
raises rate limits), pages by `limit` + opaque `cursor`, answer
`{"models": [{"endpoint_id", "metadata": {"category", "status", "date", …}}], "next_cursor",
"has_more"}`. Nothing of it is trusted: every field is checked, and a bad page fails the
whole listing (the caller keeps its previous list).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from .errors import FalError
from .transport import Transport
from .wire import is_success

PAGE_SIZE = 100
MAX_PAGES = 200  # 20,000 models; fal lists ~1,300 (a cursor that never ends is an error)
PAGE_TIMEOUT = 30.0  # seconds for one page, connection included


class PlatformError(Exception):
    """The model list could not be read; `str()` says why, without any key."""


@dataclass(frozen=True)
class PlatformModel:
    """One endpoint of the list, reduced to what /v1/models shows. JSON-serializable (as a
    dict), so that another process (e.g. through Redis) can take a list refreshed here."""

    endpoint_id: str
    category: str
    owned_by: str
    created: int | None  # Unix seconds; None when the metadata has no usable date

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint_id": self.endpoint_id,
            "category": self.category,
            "owned_by": self.owned_by,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PlatformModel:
        created = raw.get("created")
        return cls(
            str(raw["endpoint_id"]),
            str(raw["category"]),
            str(raw["owned_by"]),
            created if isinstance(created, int) else None,
        )


async def list_models(
    http: Transport,
    api_url: str,
    *,
    categories: Collection[str],
    key: str | None = None,
    page_size: int = PAGE_SIZE,
    page_timeout: float = PAGE_TIMEOUT,
) -> list[PlatformModel]:
    """Every active endpoint whose category is in `categories`, following the pages.
    `key` is a server fal key (never a client's); on 401/403 the page is asked again without
    it, since the API is public. Raises `PlatformError` on any failure."""
    models: dict[str, PlatformModel] = {}
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        params = {"limit": str(page_size), "status": "active"}
        if cursor is not None:
            params["cursor"] = cursor
        page = await _get_page(http, f"{api_url}/v1/models?{urlencode(params)}", key, page_timeout)
        for model in _parse_models(page, categories):
            models.setdefault(model.endpoint_id, model)
        cursor = _next_cursor(page)
        if cursor is None:
            return list(models.values())
        if cursor in seen:
            raise PlatformError("the model list repeats a page cursor")
        seen.add(cursor)
    raise PlatformError(f"the model list has more than {MAX_PAGES} pages")


async def _get_page(
    http: Transport, url: str, key: str | None, seconds: float
) -> Mapping[str, Any]:
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Key {key}"
    try:
        async with asyncio.timeout(seconds):
            reply = await http.send("GET", url, headers)
            if reply.status in (401, 403) and key:
                reply = await http.send("GET", url, {"Accept": "application/json"})
    except TimeoutError:
        raise PlatformError(f"no answer within {seconds:g} s") from None
    except FalError as exc:
        raise PlatformError(f"cannot reach the platform API ({exc.kind})") from None
    if not is_success(reply.status):
        raise PlatformError(f"the platform API answered HTTP {reply.status}")
    try:
        page = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        raise PlatformError("the platform API answered with invalid JSON") from None
    if not isinstance(page, dict) or not isinstance(page.get("models"), list):
        raise PlatformError("the platform API answered without a `models` list")
    return page


def _parse_models(page: Mapping[str, Any], categories: Collection[str]) -> list[PlatformModel]:
    """The kept entries of one page; malformed entries are skipped, not fatal (one odd
    endpoint must not hide the others)."""
    kept = []
    for item in page["models"]:
        if not isinstance(item, dict):
            continue
        endpoint_id, metadata = item.get("endpoint_id"), item.get("metadata")
        if not isinstance(endpoint_id, str) or "/" not in endpoint_id.strip("/"):
            continue
        if not isinstance(metadata, dict):
            continue
        category = metadata.get("category")
        if category not in categories or metadata.get("status", "active") != "active":
            continue
        kept.append(
            PlatformModel(
                endpoint_id.strip("/"),
                str(category),
                _owner(endpoint_id, metadata),
                _timestamp(metadata.get("date")) or _timestamp(metadata.get("updated_at")),
            )
        )
    return kept


def _owner(endpoint_id: str, metadata: Mapping[str, Any]) -> str:
    """The metadata's owner if it names one (not in the documented sample, but seen as a
    filter in third-party tools), else the endpoint id's namespace (`fal-ai/flux/dev`:
    `fal-ai`), which is the owning account on fal."""
    owner = metadata.get("owner")
    if isinstance(owner, str) and owner.strip():
        return owner.strip()
    return endpoint_id.strip("/").split("/", 1)[0]


def _timestamp(value: Any) -> int | None:
    """ISO 8601 (`2024-08-01T00:00:00Z`) -> Unix seconds."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp())


def _next_cursor(page: Mapping[str, Any]) -> str | None:
    cursor = page.get("next_cursor")
    if page.get("has_more") is False or not cursor:
        return None
    if not isinstance(cursor, str):
        raise PlatformError("the platform API answered with a malformed `next_cursor`")
    return cursor
