"""Which fal app serves a media request: the `model` checked against THE table."""

from __future__ import annotations

import re

from ..fal.media_apps import MEDIA_APPS, OPENAI_ALIASES, Family, MediaApp, generic_image_app
from ..openai.errors import invalid_request
from ..serve.context import RequestContext
from .catalog import Catalog

_FAMILY_NAMES = {
    "image": "text-to-image",
    "edit": "image edit",
    "stt": "speech-to-text",
    "tts": "text-to-speech",
}
# `owner/alias[/path]`, no `..`, nothing a URL would read differently.
_APP_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$")


def resolve_app(model: str | None, family: Family, default_app: str, catalog: Catalog) -> MediaApp:
    """The app for `model` on an endpoint of `family`; a 400 naming `model` otherwise."""
    app_id = model or default_app
    alias = OPENAI_ALIASES.get(app_id)
    if alias is not None and (alias == family or (alias, family) == ("image", "edit")):
        app_id = default_app
    app = MEDIA_APPS.get(app_id)
    if app is not None and app.family == family:
        return app
    is_chat = app is None and alias is None and catalog.metric_label(app_id) != "other"
    if (
        family == "image"
        and app is None
        and alias is None
        and not is_chat
        and _APP_ID.match(app_id)
    ):
        return generic_image_app(app_id)  # any other fal image app, passed through
    served = [a.app_id for a in MEDIA_APPS.values() if a.family == family]
    kind = _FAMILY_NAMES[family]
    what = (
        f"a {_FAMILY_NAMES[app.family]} model"
        if app is not None
        else "a chat model"
        if is_chat
        else "not a model this endpoint serves"
    )
    raise invalid_request(
        f"The model `{app_id}` is {what}; this endpoint takes {kind} models: "
        + ", ".join(served)
        + ".",
        param="model",
        code="model_not_supported",
    )


def note_request(context: RequestContext, catalog: Catalog, model: str, app: MediaApp) -> None:
    """What the access log and metrics say about a media request."""
    catalog.note(context, model, stream=False, route=app.family, fal_app=app.app_id)
