"""GET /admin/models: every model the proxy serves, with its kind, the HTTP route that serves
it and the fal app a request for it goes to (as the settings are now)."""

from __future__ import annotations

from typing import Any

from ..base.settings import Settings
from ..fal.media_apps import MEDIA_APPS, OPENAI_ALIASES, Family
from ..fal.openrouter import OPENROUTER_APP
from .catalog import Catalog
from .router import OPENAI, ModelRouter

KINDS = ("chat", "image", "edit", "transcription", "speech", "video")
_KIND: dict[Family, str] = {
    "image": "image",
    "edit": "edit",
    "stt": "transcription",
    "tts": "speech",
}
ROUTE_OF_KIND = {
    "chat": "/v1/chat/completions",
    "image": "/v1/images/generations",
    "edit": "/v1/images/edits",
    "transcription": "/v1/audio/transcriptions",
    "speech": "/v1/audio/speech",
}


def model_table(catalog: Catalog, router: ModelRouter, settings: Settings) -> list[dict[str, Any]]:
    defaults: dict[Family, str] = {
        "image": settings.fal_image_app,
        "edit": settings.fal_edit_app,
        "stt": settings.fal_transcribe_app,
        "tts": settings.fal_speech_app,
    }
    rows = []
    for card, source in catalog.sources():
        model_route = None
        if source == "chat":
            kind = "chat"
            model_route = router.route_for(card.id)
            # `auto` stays on the prompt app unless a request needs fal's OpenAI route.
            fal_app = OPENROUTER_APP if model_route == OPENAI else settings.fal_chat_app
        elif card.id in MEDIA_APPS:
            family = MEDIA_APPS[card.id].family
            kind, fal_app = _KIND[family], card.id
        elif card.id in OPENAI_ALIASES:
            family = OPENAI_ALIASES[card.id]
            kind, fal_app = _KIND[family], defaults[family]
        else:  # fal's live list of text-to-image apps, each served as itself
            kind, fal_app = "image", card.id
        rows.append(
            {
                "id": card.id,
                "kind": kind,
                "route": ROUTE_OF_KIND[kind],
                "model_route": model_route,
                "fal_app": fal_app,
                "owned_by": card.owned_by,
            }
        )
    return rows
