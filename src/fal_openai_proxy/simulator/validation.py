"""Input validation with FastAPI/pydantic-style 422 error items, as fal apps return them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .apps import ANY_LLM_DEFAULT_MODEL, ANY_LLM_MODELS, AppSpec

ErrorItem = dict[str, Any]

_PRIORITIES = ("throughput", "latency")
_MODEL_ENUM_MSG = "Input should be " + ", ".join(f"'{m}'" for m in sorted(ANY_LLM_MODELS))


@dataclass(frozen=True, slots=True)
class ChatInput:
    """A validated LLM input (fields of fal's ``ChatInput`` / ``AnyLlmInput``)."""

    prompt: str
    system_prompt: str | None
    model: str
    reasoning: bool
    temperature: float | None
    max_tokens: int | None
    image_urls: list[str] | None


def _error(field: str, kind: str, msg: str, value: Any = None, **ctx: Any) -> ErrorItem:
    item: ErrorItem = {"loc": ["body", field], "msg": msg, "type": kind}
    if kind != "missing":
        item["input"] = value
    if ctx:
        item["ctx"] = ctx
    return item


def body_not_object(value: Any) -> list[ErrorItem]:
    """FastAPI's error for a body that is missing, not JSON, or not an object."""
    if value is None:
        return [{"loc": ["body"], "msg": "Field required", "type": "missing"}]
    msg = "Input should be a valid dictionary or object to extract fields from"
    return [{"loc": ["body"], "msg": msg, "type": "model_attributes_type", "input": value}]


def _string(body: dict[str, Any], name: str, errors: list[ErrorItem], required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            errors.append(_error(name, "missing", "Field required"))
        return None
    if not isinstance(value, str):
        errors.append(_error(name, "string_type", "Input should be a valid string", value))
        return None
    return value


def _boolean(body: dict[str, Any], errors: list[ErrorItem]) -> bool:
    value = body.get("reasoning")
    if value is None or isinstance(value, bool):
        return value is True
    errors.append(_error("reasoning", "bool_type", "Input should be a valid boolean", value))
    return False


def _temperature(body: dict[str, Any], errors: list[ErrorItem]) -> float | None:
    value = body.get("temperature")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(_error("temperature", "float_type", "Input should be a valid number", value))
    elif value < 0:
        msg = "Input should be greater than or equal to 0"
        errors.append(_error("temperature", "greater_than_equal", msg, value, ge=0))
    elif value > 2:
        msg = "Input should be less than or equal to 2"
        errors.append(_error("temperature", "less_than_equal", msg, value, le=2))
    else:
        return float(value)
    return None


def _max_tokens(body: dict[str, Any], errors: list[ErrorItem]) -> int | None:
    value = body.get("max_tokens")
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # pydantic's lax mode accepts 5.0 for an int
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(_error("max_tokens", "int_type", "Input should be a valid integer", value))
        return None
    if value < 1:
        msg = "Input should be greater than or equal to 1"
        errors.append(_error("max_tokens", "greater_than_equal", msg, value, ge=1))
        return None
    return value


def _model(body: dict[str, Any], app: AppSpec, errors: list[ErrorItem]) -> str:
    if app.router:
        return _string(body, "model", errors, required=True) or ""
    value = body.get("model")
    if value is None:
        return ANY_LLM_DEFAULT_MODEL
    if value not in ANY_LLM_MODELS:
        errors.append(_error("model", "enum", _MODEL_ENUM_MSG, value))
        return ""
    return str(value)


def _priority(body: dict[str, Any], app: AppSpec, errors: list[ErrorItem]) -> None:
    value = body.get("priority")
    if app.router or value is None or value in _PRIORITIES:
        return
    msg = "Input should be 'throughput' or 'latency'"
    errors.append(_error("priority", "enum", msg, value, expected="'throughput' or 'latency'"))


def _image_urls(body: dict[str, Any], app: AppSpec, errors: list[ErrorItem]) -> list[str] | None:
    value = body.get("image_urls")
    if not app.vision:
        return None  # non-vision apps ignore extra fields, as pydantic does by default
    if value is None:
        if app.images_required:
            errors.append(_error("image_urls", "missing", "Field required"))
        return None
    if not isinstance(value, list):
        errors.append(_error("image_urls", "list_type", "Input should be a valid list", value))
        return None
    for i, url in enumerate(value):
        if not isinstance(url, str):
            item = _error("image_urls", "string_type", "Input should be a valid string", url)
            item["loc"].append(i)
            errors.append(item)
    if app.images_required and not value:
        msg = "List should have at least 1 item after validation, not 0"
        errors.append(_error("image_urls", "too_short", msg, value, field_type="List"))
    return value if not errors else None


def validate(
    body: dict[str, Any], app: AppSpec, max_prompt_chars: int | None = None
) -> ChatInput | list[ErrorItem]:
    """Return the validated input, or the list of 422 error items."""
    errors: list[ErrorItem] = []
    prompt = _string(body, "prompt", errors, required=True)
    if prompt is not None and max_prompt_chars is not None and len(prompt) > max_prompt_chars:
        # pydantic's wording for a `max_length` constraint, as FastAPI returns it.
        msg = f"String should have at most {max_prompt_chars} characters"
        errors.append(_error("prompt", "string_too_long", msg, prompt, max_length=max_prompt_chars))
    system_prompt = _string(body, "system_prompt", errors, required=False)
    model = _model(body, app, errors)
    reasoning = _boolean(body, errors)
    temperature = _temperature(body, errors)
    max_tokens = _max_tokens(body, errors)
    _priority(body, app, errors)
    image_urls = _image_urls(body, app, errors)
    if errors or prompt is None:
        return errors
    return ChatInput(
        prompt, system_prompt, model, reasoning, temperature, max_tokens, image_urls or None
    )
