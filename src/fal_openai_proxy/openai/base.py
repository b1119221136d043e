"""What every OpenAI request shares: one base model (one policy for unknown fields and
non-finite numbers), one conversion of validation errors to OpenAI's 400, and the checks of
raw JSON bodies that go to fal's OpenAI route nearly as they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ProxyError, invalid_request

# Array items plus object members in one body. Checked on the raw bytes before parsing, so
# that no body builds more objects than this (a 20 MiB body can hold 1.3 M messages).
MAX_JSON_ITEMS = 50_000
M = TypeVar("M", bound="OpenAIModel")


class OpenAIModel(BaseModel):
    """OpenAI accepts fields it does not document; so do we, and drop them unread (never
    converted to Python objects, whatever their size). NaN and infinities are refused."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


def parse_json(model: type[M], body: bytes) -> M:
    """`body` validated as `model`; every failure is a 400 naming the field."""
    check_json_size(body)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


@dataclass(frozen=True, slots=True)
class CheckedBody:
    """A body for fal's OpenAI route, checked: sent on as it is."""

    body: dict[str, Any]
    model: str
    stream: bool


def check_json_size(body: bytes, limit: int = MAX_JSON_ITEMS) -> None:
    """Refuse a body with more than `limit` array items and object members, before parsing.

    Every item after a container's first follows a comma, so a body with few commas is small
    (one C-speed count). Otherwise commas inside strings are set aside: escapes removed, the
    body split at its quotes (a bounded split, as each string is itself an item), and only
    the commas outside strings counted. Every step is a linear pass in C: tens of ms for 20 MiB.
    """
    if body.count(b",") <= limit:
        return
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in body else body
    if plain.count(b'"') // 2 <= limit:
        outside = plain.split(b'"')[::2]
        if sum(part.count(b",") for part in outside) <= limit:
            return
    raise invalid_request(
        f"The request has too many JSON values: at most {limit} array items and object "
        "members are allowed.",
        code="request_too_complex",
    )


def validation_error(exc: ValidationError) -> ProxyError:
    """pydantic's most telling error as OpenAI's 400, the field named as OpenAI names it."""
    errors = exc.errors(include_url=False)
    # Of a union's alternatives, the deepest error is the one that explains the mistake; at
    # equal depth, a broken constraint explains more than a wrong type.
    first = max(errors, key=lambda error: (len(error["loc"]), not error["type"].endswith("_type")))
    kind = first["type"]
    if kind == "json_invalid" or (kind == "model_type" and not first["loc"]):
        return invalid_request(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        )
    param = _param_name(first["loc"])
    if kind == "missing":
        return invalid_request(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    if kind == "too_short" and param == "messages":
        return invalid_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param,
            "empty_array",
        )
    if kind == "union_tag_not_found":  # a content part without `type`
        param += ".type"
        return invalid_request(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    if kind == "union_tag_invalid":  # a content part of an unknown `type`
        param += ".type"
    if kind in ("literal_error", "union_tag_invalid"):
        return invalid_request(
            f"Invalid value for '{param}': {first['msg']}.", param, "invalid_value"
        )
    if kind == "too_long":
        code = "array_above_max_length"
    elif kind == "string_too_long":
        code = "string_above_max_length"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        code = "invalid_type"
    else:
        code = "invalid_value"
    return invalid_request(f"Invalid '{param}': {first['msg']}.", param, code)


def _param_name(loc: tuple[int | str, ...]) -> str:
    """('messages', 0, 'content') -> 'messages[0].content', as OpenAI names it."""
    name = ""
    previous: int | str = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part in _UNION_LABELS or "[" in part or part.startswith("constrained-"):
            continue  # pydantic's union branch labels are not field names
        elif isinstance(previous, int) and part in _PART_TAGS:
            pass  # the discriminator tag of a content part
        else:
            name += f".{part}" if name else part
        previous = part
    return name


_UNION_LABELS = {"str", "bool", "int", "ReasoningOptions", "ImageURL", "dict[str,any]"}
_PART_TAGS = {"text", "image_url", "refusal", "input_audio", "file"}


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        fail(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            None,
            "invalid_json",
        )
    return body


def model_id(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        fail("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        fail("Invalid 'model': expected a non-empty string.", "model", "invalid_type")
    return model


def fail(message: str, param: str | None, code: str) -> NoReturn:
    raise invalid_request(message, param, code)
