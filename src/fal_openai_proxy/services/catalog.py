"""The model catalog behind /v1/models, and which model ids each fal app accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..base.settings import ROUTES
from ..fal.apps import ANY_LLM_MODELS, is_any_llm
from ..fal.platform import PlatformModel
from ..openai.errors import invalid_request, model_not_found
from ..serve.context import RequestContext

# Popular ids for openrouter/router, which forwards any OpenRouter model id as it is.
ROUTER_MODELS = (
    "google/gemini-2.5-flash",
    "google/gemini-2.5-pro",
    "anthropic/claude-sonnet-4.6",
    "anthropic/claude-opus-4.6",
    "anthropic/claude-sonnet-4.5",
    "anthropic/claude-3.7-sonnet",
    "openai/gpt-4.1",
    "openai/gpt-5-chat",
    "openai/gpt-oss-120b",
    "meta-llama/llama-4-maverick",
    "deepseek/deepseek-r1",
)

# OpenAI's own model ids, bare, as OpenAI clients send them by default: each stands for
# OpenRouter's `openai/<id>` (as `dall-e-3` and `whisper-1` stand for fal's media apps), and
# /v1/models lists them. Any other bare id of OpenAI's families maps the same way.
OPENAI_CHAT_IDS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5-chat",
    "gpt-oss-120b",
    "gpt-4-turbo",
    "gpt-3.5-turbo",
)
OPENAI_EMBEDDING_IDS = (
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)
# The embedding models of fal's OpenAI route (OpenRouter's ids; docs/fal-protocol.md §9.4).
EMBEDDING_MODELS = tuple(f"openai/{m}" for m in OPENAI_EMBEDDING_IDS)
_OPENAI_FAMILIES = re.compile(r"(gpt-|chatgpt-|o[1-9](-|$)|text-embedding-)")
OPENAI_OWNER = "openai"
# Anthropic's own ids, as Claude Code and the anthropic SDK send them, dated or not
# (`claude-sonnet-4-5-20250929`, `claude-3-5-haiku-latest`), stand for OpenRouter's
# `anthropic/claude-sonnet-4.5` and `anthropic/claude-3.5-haiku` (docs/anthropic.md).
_CLAUDE = re.compile(
    r"claude-(?:(?P<generation>\d)(?:-(?P<point>\d))?-(?P<tier>[a-z]+)"
    r"|(?P<name>[a-z]+)-(?P<major>\d)(?:-(?P<minor>\d))?)(?:-\d{8}|-latest)?"
)


def claude_model(model_id: str) -> str | None:
    """OpenRouter's id for one of Anthropic's own ids, else None."""
    match = _CLAUDE.fullmatch(model_id)
    if match is None:
        return None
    if match["tier"]:  # claude-3-5-haiku: the generation before the tier
        version = match["generation"] + (f".{match['point']}" if match["point"] else "")
        return f"anthropic/claude-{version}-{match['tier']}"
    version = match["major"] + (f".{match['minor']}" if match["minor"] else "")
    return f"anthropic/claude-{match['name']}-{version}"


# fal's platform categories (`metadata.category`) that the live list (FAL_MODELS_REFRESH=1)
# keeps: True when the proxy serves every endpoint of the category, so each is listed; False
# when it serves only its own apps, so the live list only refreshes `owned_by`/`created` of
# ids already in the built-in list. Chat ("llm", "vision") is not here: those endpoints are
# fal's chat apps (openrouter/router, fal-ai/any-llm), while a chat client names an
# OpenRouter model, which fal's list cannot enumerate; chat ids stay the built-in list's.
LIVE_CATEGORIES: dict[str, bool] = {
    "text-to-image": True,  # /v1/images/generations passes any fal image app through
    "image-to-image": False,  # /v1/images/edits: the edit apps of its table
    "speech-to-text": False,  # /v1/audio/transcriptions
    "text-to-speech": False,  # /v1/audio/speech
    "text-to-audio": False,  # /v1/audio/speech: Kokoro's category (docs/fal-protocol.md §11)
}

# A fixed timestamp, so listings are identical across restarts and replicas.
_CREATED = 1735689600  # 2025-01-01


@dataclass(frozen=True)
class ModelCard:
    id: str
    owned_by: str
    created: int = _CREATED
    route: str | None = None  # MODELS_FILE's `route` for this model; not part of the answer
    kind: str | None = None  # what the model makes, where it is not chat ("text-to-video")

    def to_openai(self) -> dict[str, Any]:
        model: dict[str, Any] = {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
        }
        if self.kind is not None:
            model["kind"] = self.kind
        return model


def card(model_id: str) -> ModelCard:
    if "/" in model_id:
        return ModelCard(model_id, model_id.split("/", 1)[0])
    bare_openai = model_id in OPENAI_CHAT_IDS or model_id in OPENAI_EMBEDDING_IDS
    return ModelCard(model_id, OPENAI_OWNER if bare_openai else "fal")


class ModelSource(Protocol):
    """Where the latest live list comes from (the refresher in this process; later, a
    list shared by the replicas)."""

    def latest(self) -> Sequence[PlatformModel]: ...


class Catalog:
    def __init__(
        self,
        chat_app: str,
        models: list[ModelCard] | None = None,
        live: ModelSource | None = None,
    ) -> None:
        """`models` (from MODELS_FILE) replaces the built-in list when given; `live` adds
        fal's own list (LIVE_CATEGORIES) to what /v1/models shows."""
        self._chat_app = chat_app
        self._live = live
        # (live list, built-in cards) -> merged cards: the last merge, reused while both hold.
        self._merged: tuple[object, object, list[ModelCard]] = (None, None, [])
        self._from_file = models is not None
        if models is not None:
            self._cards = models
        else:
            chat = ANY_LLM_MODELS if is_any_llm(chat_app) else (*ROUTER_MODELS, *ANY_LLM_MODELS)
            aliases = [m for m in OPENAI_CHAT_IDS if self._servable(f"{OPENAI_OWNER}/{m}")]
            ids = dict.fromkeys([*chat, *aliases, *EMBEDDING_MODELS, *OPENAI_EMBEDDING_IDS])
            self._cards = [card(m) for m in ids]
        self._by_id = {c.id: c for c in self._cards}
        self._media: frozenset[str] = frozenset()

    def list(self) -> list[dict[str, Any]]:
        return [c.to_openai() for c in self._listed()]

    def _listed(self) -> Sequence[ModelCard]:
        """The built-in cards, with live metadata where fal lists the same id, then the live
        ids of the categories served in full. Recomputed only when the live list changes."""
        latest = self._live.latest() if self._live is not None else None
        if not latest:
            return self._cards
        if self._merged[0] is latest and self._merged[1] is self._cards:
            return self._merged[2]
        live = {m.endpoint_id: m for m in latest if m.category in LIVE_CATEGORIES}
        cards = [_with_live(c, live.get(c.id)) for c in self._cards]
        cards += [
            _with_live(card(m.endpoint_id), m)
            for m in live.values()
            if LIVE_CATEGORIES[m.category] and m.endpoint_id not in self._by_id
        ]
        self._merged = (latest, self._cards, cards)
        return cards

    def sources(self) -> Sequence[tuple[ModelCard, str]]:
        """Every listed card and where it comes from: "chat" (the built-in list or
        MODELS_FILE), "media" (THE table of media apps) or "live" (fal's image list)."""
        return [
            (c, "media" if c.id in self._media else "chat" if c.id in self._by_id else "live")
            for c in self._listed()
        ]

    def get(self, model_id: str) -> dict[str, Any]:
        found = self._by_id.get(model_id)
        if found is None and self._live is not None:
            found = next((c for c in self._listed() if c.id == model_id), None)
        fal_id = self.fal_model(model_id) if found is None else model_id
        if found is None and self._servable(fal_id):
            # The router forwards any OpenRouter id; a bare OpenAI or Anthropic id is its
            # maker's model.
            found = (
                card(model_id) if fal_id == model_id else ModelCard(model_id, card(fal_id).owned_by)
            )
        if found is None:
            raise model_not_found(model_id)
        return found.to_openai()

    def fal_model(self, model_id: str) -> str:
        """The id fal's apps and OpenAI route take: a bare OpenAI id (`gpt-4o`) becomes
        `openai/gpt-4o`; any other id is itself. One regex match for an unlisted id."""
        if "/" in model_id or model_id in self._media:
            return model_id
        if model_id in self._by_id and self._from_file:
            return model_id  # MODELS_FILE's own bare id, sent as it is
        if _OPENAI_FAMILIES.match(model_id):
            return f"{OPENAI_OWNER}/{model_id}"
        if model_id.startswith("claude-"):
            return claude_model(model_id) or model_id
        return model_id

    def _servable(self, fal_id: str) -> bool:
        """Whether the chat app would take this fal id (the router: any `owner/name`)."""
        if is_any_llm(self._chat_app):
            return fal_id in (self._by_id if self._from_file else ANY_LLM_MODELS)
        return "/" in fal_id.strip("/")

    def chat_model(self, model_id: str) -> str:
        """The fal id of a model sent to a text endpoint (chat, completions, Responses,
        embeddings), checked before any route is chosen: 400 for an image or audio model,
        404 for a bare id that stands for nothing (as `GET /v1/models/{id}` answers)."""
        if model_id in self._media:
            raise invalid_request(
                f"The model `{model_id}` is an image or audio model, not a chat model.",
                param="model",
                code="model_not_supported",
            )
        fal_id = self.fal_model(model_id)
        if "/" not in fal_id and fal_id not in self._by_id:
            raise model_not_found(model_id)
        return fal_id

    def add_media(self, ids: Sequence[str]) -> None:
        """List the media models (images, audio) after the chat models."""
        new = [card(m) for m in ids if m not in self._by_id]
        self._cards = [*self._cards, *new]
        self._by_id.update((c.id, c) for c in new)
        self._media = self._media | frozenset(ids)

    def add_kinds(self, models: Sequence[tuple[str, str]]) -> None:
        """List models that are not chat models, each with its kind (the video models)."""
        new = [
            ModelCard(m, card(m).owned_by, kind=kind) for m, kind in models if m not in self._by_id
        ]
        self._cards = [*self._cards, *new]
        self._by_id.update((c.id, c) for c in new)
        self._media = self._media | {c.id for c in new}

    def check(self, app: str, model_id: str) -> None:
        """404 for an id that an any-llm app would reject; the router takes any id.
        `model_id` is the client's; its fal id is what the app must take."""
        fal_id = self.chat_model(model_id)
        if not is_any_llm(app):
            return
        allowed = self._by_id if self._from_file else ANY_LLM_MODELS
        if fal_id not in allowed:
            raise model_not_found(model_id)

    def metric_label(self, model_id: str) -> str:
        """Known ids as themselves; anything else as "other" (bounded label cardinality)."""
        return model_id if model_id in self._by_id else "other"

    def note(
        self, context: RequestContext, model_id: str, *, stream: bool, route: str, fal_app: str
    ) -> None:
        """The model a request asked for, in its log and usage fields; a 403 if its key may
        not use it (after the fields are filled: the request log names the model refused)."""
        context.usage.fal_app = fal_app
        fields = context.log
        fields.model = model_id
        fields.model_label = self.metric_label(model_id)
        fields.stream = stream
        fields.route = route
        context.check_model(model_id)


def _with_live(base: ModelCard, live: PlatformModel | None) -> ModelCard:
    if live is None:
        return base
    return ModelCard(base.id, live.owned_by, live.created or base.created)


class ModelsFileError(ValueError):
    """A MODELS_FILE that cannot be read; its message is one line naming the file."""


def load_models_file(path: Path) -> list[ModelCard]:
    """A JSON or YAML list of ids or {id, owned_by?, created?}, or OpenAI's {"data": [...]}.

    Any problem (missing, unreadable, not UTF-8, bad syntax, a bad field) is a
    ModelsFileError: start-up then fails with one line, as for other bad settings."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise ModelsFileError(f"MODELS_FILE {path}: {type(exc).__name__}: {reason}") from None
    if isinstance(raw, dict):
        raw = raw.get("data", raw.get("models"))
    if not isinstance(raw, list):
        raise ModelsFileError(f"MODELS_FILE {path}: expected a list of models")
    return [_card_from(path, index, item) for index, item in enumerate(raw)]


def _card_from(path: Path, index: int, item: object) -> ModelCard:
    if isinstance(item, str) and item:
        return card(item)
    if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
        base = card(item["id"])
        owned_by = item.get("owned_by", base.owned_by)
        created = item.get("created", _CREATED)
        route = item.get("route")
        # A whole number of seconds: not a bool, a float such as 1e400, or a string.
        if (
            not isinstance(owned_by, str)
            or isinstance(created, bool)
            or not isinstance(created, int)
            or not 0 <= created < 2**63
        ):
            raise ModelsFileError(
                f"MODELS_FILE {path}: model {index}: owned_by must be a string and created "
                "a whole number of seconds"
            )
        if route is not None and (not isinstance(route, str) or route.lower() not in ROUTES):
            raise ModelsFileError(
                f"MODELS_FILE {path}: model {index}: route must be one of {', '.join(ROUTES)}"
            )
        return ModelCard(base.id, owned_by, created, route.lower() if route else None)
    raise ModelsFileError(
        f"MODELS_FILE {path}: model {index}: expected an id or an object with an id"
    )
