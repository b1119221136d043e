"""The fal apps the simulator serves, and fal's app-id parsing rules."""

from __future__ import annotations

from dataclasses import dataclass

# Namespaces that add a leading segment to an app id (fal_client ``AppId.from_endpoint_id``).
_NAMESPACES = frozenset({"workflows", "comfy"})

ANY_LLM_DEFAULT_MODEL = "google/gemini-2.5-flash-lite"

# Union of every model id fal-protocol.md §2.1 lists for the any-llm family (base, enterprise,
# vision); one enum keeps the simulator lenient across the three variants.
ANY_LLM_MODELS: frozenset[str] = frozenset(
    {
        "deepseek/deepseek-r1",
        "anthropic/claude-3.7-sonnet",
        "anthropic/claude-3.5-sonnet",
        "anthropic/claude-3-5-haiku",
        "anthropic/claude-3-haiku",
        "google/gemini-pro-1.5",
        "google/gemini-flash-1.5",
        "google/gemini-flash-1.5-8b",
        "google/gemini-2.0-flash-001",
        "google/gemini-2.5-flash",
        "google/gemini-2.5-flash-lite",
        "google/gemini-2.5-pro",
        "meta-llama/llama-3.2-1b-instruct",
        "meta-llama/llama-3.2-3b-instruct",
        "meta-llama/llama-3.1-8b-instruct",
        "meta-llama/llama-3.1-70b-instruct",
        "meta-llama/llama-3.2-90b-vision-instruct",
        "openai/gpt-oss-120b",
        "openai/gpt-4o-mini",
        "openai/gpt-4o",
        "openai/gpt-4.1",
        "openai/o3",
        "openai/gpt-5-chat",
        "openai/gpt-5-mini",
        "openai/gpt-5-nano",
        "meta-llama/llama-4-maverick",
        "meta-llama/llama-4-scout",
    }
)


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
