"""The fal apps the simulator serves, and fal's app-id parsing rules."""

from __future__ import annotations

from dataclasses import dataclass

from ..fal.apps import ANY_LLM_MODELS as FAL_ANY_LLM_MODELS

# Namespaces that add a leading segment to an app id (fal_client ``AppId.from_endpoint_id``).
_NAMESPACES = frozenset({"workflows", "comfy"})

ANY_LLM_DEFAULT_MODEL = "google/gemini-2.5-flash-lite"

# fal's any-llm enum; the simulator stands in for fal, which holds the list.
ANY_LLM_MODELS: frozenset[str] = frozenset(FAL_ANY_LLM_MODELS)


def base_length(segments: list[str]) -> int:
    """Number of leading segments forming ``[namespace/]owner/alias``."""
    return 3 if segments and segments[0] in _NAMESPACES else 2


def split_app_id(app_id: str) -> tuple[str, str]:
    """Split an app id into (``[namespace/]owner/alias``, sub-path)."""
    segments = app_id.split("/")
    n = base_length(segments)
    return "/".join(segments[:n]), "/".join(segments[n:])


@dataclass(frozen=True, slots=True)
class AppSpec:
    """What distinguishes one simulated app from another."""

    app_id: str
    router: bool  # openrouter/* : free-form model, usage in the output
    vision: bool
    images_required: bool

    @property
    def base(self) -> str:
        """``owner/alias`` without the sub-path, as used in queue request URLs."""
        return split_app_id(self.app_id)[0]


APPS: dict[str, AppSpec] = {
    spec.app_id: spec
    for spec in (
        AppSpec("openrouter/router", router=True, vision=False, images_required=False),
        AppSpec("openrouter/router/enterprise", router=True, vision=False, images_required=False),
        AppSpec("openrouter/router/vision", router=True, vision=True, images_required=True),
        AppSpec("fal-ai/any-llm", router=False, vision=False, images_required=False),
        AppSpec("fal-ai/any-llm/enterprise", router=False, vision=False, images_required=False),
        AppSpec("fal-ai/any-llm/vision", router=False, vision=True, images_required=False),
    )
}

APP_BASES: frozenset[str] = frozenset(spec.base for spec in APPS.values())
# The media apps' `owner/alias` bases (simulator/media.py plays them).
MEDIA_BASES: frozenset[str] = frozenset(
    {
        "fal-ai/flux",
        "fal-ai/flux-pro",
        "fal-ai/recraft",
        "fal-ai/ideogram",
        "fal-ai/whisper",
        "fal-ai/wizper",
        "fal-ai/kokoro",
        # the video apps (simulator/video.py)
        "fal-ai/veo3.1",
        "fal-ai/kling-video",
        "fal-ai/wan-25-preview",
    }
)
