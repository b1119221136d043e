"""Which fal route serves a chat request: MODEL_ROUTES, then MODELS_FILE, else `auto`.

`prompt` is the seed's flattening into fal's prompt apps; `openai` is fal's OpenAI route;
`auto` stays on `prompt` unless the request needs what only the OpenAI route honours
(`openai.tools.needs_openai_route`).
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from ..settings import ROUTES

PROMPT, OPENAI, AUTO = "prompt", "openai", "auto"
_CACHE_LIMIT = 4096  # model ids are client-controlled: bound the memo


class RouteTable:
    def __init__(
        self, patterns: list[tuple[str, str]], per_model: dict[str, str] | None = None
    ) -> None:
        self._patterns = patterns
        self._per_model = per_model or {}
        self._memo: dict[str, str] = {}

    def route_for(self, model: str) -> str:
        """The configured route of a model id (one dict lookup once seen)."""
        route = self._memo.get(model)
        if route is None:
            route = self._lookup(model)
            if len(self._memo) >= _CACHE_LIMIT:
                self._memo.clear()
            self._memo[model] = route
        return route

    def _lookup(self, model: str) -> str:
        for pattern, route in self._patterns:
            if fnmatchcase(model, pattern):
                return route
        return self._per_model.get(model, AUTO)


def load_model_routes(path: Path) -> dict[str, str]:
    """The `route` of each `{id, route}` entry of a MODELS_FILE (other entries have none)."""
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if isinstance(raw, dict):
        raw = raw.get("data", raw.get("models"))
    routes: dict[str, str] = {}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and "route" in item:
            route = str(item["route"]).strip().lower()
            if route not in ROUTES:
                raise ValueError(f"{path}: model {item['id']!r} has route {route!r}; "
                                 "expected prompt, openai or auto")  # fmt: skip
            routes[item["id"]] = route
    return routes
