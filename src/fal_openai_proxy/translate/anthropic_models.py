"""The model list in Anthropic's shape (the anthropic SDK's `types/model_info.py`, and the
`after_id` / `before_id` / `limit` paging of `resources/models.py`), for a client that sends
`anthropic-version`; every other client gets OpenAI's list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

DEFAULT_LIMIT = 20  # `ModelListParams.limit`: "Defaults to 20. Ranges from 1 to 1000."
MAX_LIMIT = 1000


def model_info(model: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI model object (catalog.py) as Anthropic's `ModelInfo`."""
    created = model.get("created")
    stamp = datetime.fromtimestamp(created if isinstance(created, int) else 0, UTC)
    return {
        "type": "model",
        "id": model["id"],
        "display_name": model["id"],
        "created_at": stamp.isoformat().replace("+00:00", "Z"),
        "lifecycle": "active",
    }


def model_page(
    models: Sequence[Mapping[str, Any]],
    *,
    limit: int = DEFAULT_LIMIT,
    after_id: str | None = None,
    before_id: str | None = None,
) -> dict[str, Any]:
    """One page: the `limit` models after `after_id` (or before `before_id`)."""
    ids = [m["id"] for m in models]
    start, end = 0, len(models)
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else len(models)
        end = min(start + limit, len(models))
        has_more = end < len(models)
    elif before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        start = max(end - limit, 0)
        has_more = start > 0
    else:
        end = min(limit, len(models))
        has_more = end < len(models)
    data = [model_info(m) for m in models[start:end]]
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
