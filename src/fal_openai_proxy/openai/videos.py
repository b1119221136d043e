"""OpenAI's Videos API shapes: the create request (multipart, as the openai SDK sends it, or
JSON), the video object, its list page and its deletion (openai-python `resources/videos.py`,
`types/video.py`, `types/video_create_params.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .errors import ProxyError, invalid_request
from .forms import Form, FormFile

# The create request's own fields; any other is an input of the fal app (passed through).
_OWN_FIELDS = frozenset({"prompt", "model", "seconds", "size", "input_reference"})
MAX_PROMPT_CHARS = 32_000
MAX_EXTRA_FIELDS = 32


@dataclass
class VideoCreate:
    """A create request, whatever its encoding."""

    prompt: str
    model: str | None = None
    seconds: str | None = None
    size: str | None = None
    image_file: FormFile | None = None  # an uploaded `input_reference`
    image_url: str | None = None  # `input_reference: {"image_url": ...}`
    extras: dict[str, Any] = field(default_factory=dict)
    form_extras: bool = False  # the extras are a form's strings


class VideoCreateBody(BaseModel):
    """videos.create, as JSON (the SDK sends the same fields as multipart/form-data, with
    `input_reference` as a file part). Other fields are inputs of the fal app, passed on."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(
        None, description="sora-2 / sora-2-pro (FAL_VIDEO_APP), a video app of the table, or "
        "any fal app id."
    )  # fmt: skip
    seconds: str | None = Field(None, description="4, 8 or 12 (or 5, 6, 10): the app's nearest.")
    size: str | None = Field(None, description="WIDTHxHEIGHT, e.g. 1280x720 or 720x1280.")
    input_reference: dict[str, str] | None = Field(
        None, description='`{"image_url": "https://… or data:…"}`; as a form, an image file.'
    )


class VideoRemixBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)


def create_from_json(body: bytes) -> VideoCreate:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raw = None
    if not isinstance(raw, dict):
        raise invalid_request(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        )
    request = VideoCreate(
        _text(raw, "prompt", required=True) or "",
        _text(raw, "model"),
        _text(raw, "seconds", number=True),
        _text(raw, "size"),
    )
    reference = raw.get("input_reference")
    if reference is not None:
        request.image_url = _reference_url(reference)
    request.extras = _extras({k: v for k, v in raw.items() if k not in _OWN_FIELDS})
    return request


def create_from_form(form: Form) -> VideoCreate:
    fields = form.fields
    request = VideoCreate(
        _text(fields, "prompt", required=True) or "",
        _text(fields, "model"),
        _text(fields, "seconds"),
        _text(fields, "size"),
        form_extras=True,
    )
    files = form.files.get("input_reference", [])
    if len(files) > 1:
        raise invalid_request(
            "Invalid 'input_reference': give one image.", "input_reference", "invalid_value"
        )
    request.image_file = files[0] if files else None
    url = fields.get("input_reference[image_url]")
    if url:
        request.image_url = _reference_url({"image_url": url})
    if "input_reference[file_id]" in fields:
        _reference_url({"file_id": fields["input_reference[file_id]"]})
    if request.image_file is not None and request.image_url is not None:
        raise invalid_request(
            "Invalid 'input_reference': give a file or an image_url, not both.",
            "input_reference",
            "invalid_value",
        )
    others = {
        k: v for k, v in fields.items() if k not in _OWN_FIELDS and not k.startswith("input_ref")
    }
    request.extras = _extras(others)
    return request


def parse_remix(body: bytes) -> str:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raw = None
    if not isinstance(raw, dict):
        raise invalid_request(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        )
    return _text(raw, "prompt", required=True) or ""


def _text(
    raw: dict[str, Any], name: str, *, required: bool = False, number: bool = False
) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise invalid_request(
                f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
            )
        return None
    if number and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `"seconds": 8` as well as "8"
    if not isinstance(value, str):
        raise invalid_request(
            f"Invalid type for '{name}': expected a string.", name, "invalid_type"
        )
    if len(value) > MAX_PROMPT_CHARS:
        raise invalid_request(
            f"Invalid '{name}': at most {MAX_PROMPT_CHARS} characters.", name, "invalid_value"
        )
    return value


def _reference_url(reference: Any) -> str:
    if isinstance(reference, dict) and "file_id" in reference and "image_url" not in reference:
        raise ProxyError(
            400,
            "Unsupported parameter: 'input_reference.file_id': this server has no Files API; "
            "upload the image, or give its image_url.",
            param="input_reference",
            code="unsupported_parameter",
        )
    url = reference.get("image_url") if isinstance(reference, dict) else None
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://", "data:")):
        raise invalid_request(
            "Invalid 'input_reference': expected an image file, or {\"image_url\": an http(s) "
            "URL or a data URI}.",
            "input_reference",
            "invalid_value",
        )
    return url


def _extras(extras: dict[str, Any]) -> dict[str, Any]:
    if len(extras) > MAX_EXTRA_FIELDS:
        raise invalid_request(
            f"Too many fields: at most {MAX_EXTRA_FIELDS} beyond OpenAI's own.",
            code="invalid_value",
        )
    return extras


# -- answers ----------------------------------------------------------------------------------


def video_object(
    *,
    video_id: str,
    model: str,
    status: str,
    progress: int,
    created_at: int,
    seconds: str,
    size: str,
    completed_at: int | None = None,
    expires_at: int | None = None,
    prompt: str | None = None,
    remixed_from_video_id: str | None = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """OpenAI's `Video` (openai-python `types/video.py`)."""
    return {
        "id": video_id,
        "object": "video",
        "model": model,
        "status": status,
        "progress": progress,
        "created_at": created_at,
        "completed_at": completed_at,
        "expires_at": expires_at,
        "error": error,
        "prompt": prompt,
        "remixed_from_video_id": remixed_from_video_id,
        "seconds": seconds,
        "size": size,
    }


def video_page(videos: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A cursor page (`SyncConversationCursorPage`): the next page is `?after=<last_id>`."""
    return {
        "object": "list",
        "data": videos,
        "first_id": videos[0]["id"] if videos else None,
        "last_id": videos[-1]["id"] if videos else None,
        "has_more": has_more,
    }


def video_deleted(video_id: str) -> dict[str, Any]:
    return {"id": video_id, "object": "video.deleted", "deleted": True}
