"""Which fal route serves a chat request: MODEL_ROUTES, then MODELS_FILE, else `auto`.

`prompt` is the seed's flattening into fal's prompt apps; `openai` is fal's OpenAI route;
`auto` stays on `prompt` unless the request needs what only the OpenAI route honours
(`openai.tools.needs_openrouter`).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

PROMPT, OPENAI, AUTO = "prompt", "openai", "auto"
_CACHE_LIMIT = 4096  # model ids are client-controlled: bound the memo


class ModelRouter:
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
