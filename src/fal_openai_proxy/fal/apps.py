"""fal's chat apps and what they accept (docs/fal-protocol.md §8)."""

# fal-ai/any-llm's model enum (docs/fal-protocol.md §8); the app rejects anything else.
ANY_LLM_MODELS = (
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
    "meta-llama/llama-3.2-90b-vision-instruct",
)


def is_any_llm(app: str) -> bool:
    """fal-ai/any-llm and its /enterprise and /vision variants take only listed models."""
    return app.startswith("fal-ai/any-llm")
