"""OpenAI's media requests: images.generate (JSON), images.edit and audio (multipart forms),
audio.speech (JSON). Every refusal is a 400 naming the field, as OpenAI's are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from .errors import ProxyError, invalid_request, unsupported

# A form's text fields are short; files are bounded separately (MAX_FILE_BYTES).
_MAX_FIELD_BYTES = 64 * 1024
_MAX_FIELDS = 64
M = TypeVar("M", bound=BaseModel)


class _Open(BaseModel):
    """Undocumented fields are accepted and ignored, as OpenAI's clients may send them."""

    model_config = ConfigDict(extra="allow")


class ImageGenerationRequest(_Open):
    prompt: str = Field(min_length=1)
    model: str | None = None
    n: int | None = Field(None, ge=1, le=10)
    size: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    quality: str | None = None
    style: str | None = None
    output_format: str | None = None
    stream: bool | None = None


class SpeechRequest(_Open):
    model: str = Field(min_length=1)
    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field(min_length=1)
    response_format: str | None = None
    speed: float | None = Field(None, ge=0.25, le=4.0)
    instructions: str | None = None
    stream_format: str | None = None


# -- the multipart forms, described for /openapi.json ----------------------------------------
# `Form` reads these bodies field by field (the services check each value, with the same
# limits as below); these models only describe them. tests/e2e/test_openapi.py sends a body
# that breaks each model's limits and expects the server's 400.

_IMAGE_FILE = "PNG, JPEG, WebP or GIF (checked by its bytes), at most MAX_FILE_BYTES."


class ImageEditForm(_Open):
    """images.edit, as multipart/form-data. `model` defaults to FAL_EDIT_APP."""

    image: bytes | list[bytes] = Field(
        description="The image; several as repeated `image[]` parts (up to the app's limit: "
        "4 for fal-ai/flux-pro/kontext/multi, else 1). " + _IMAGE_FILE
    )
    prompt: str = Field(min_length=1)
    mask: bytes | None = Field(
        None, description="Required by fill apps, refused by the others. " + _IMAGE_FILE
    )
    model: str | None = None
    n: int | None = Field(None, ge=1, le=10)
    size: str | None = Field(None, description="`auto` or `WIDTHxHEIGHT`, each side 64-4096.")
    response_format: Literal["url", "b64_json"] | None = None
    output_format: str | None = None
    quality: str | None = None
    strength: float | None = Field(None, ge=0.01, le=1.0, description="Apps that take it.")


class TranslationForm(_Open):
    """audio.translations (English out), as multipart/form-data."""

    file: bytes = Field(
        description="mp3, mp4, mpeg, mpga, m4a, wav or webm (by its name, else its type), at "
        "most MAX_FILE_BYTES."
    )
    model: str = Field(min_length=1, description="fal-ai/whisper, fal-ai/wizper or whisper-1.")
    prompt: str | None = Field(None, description="Sent to fal-ai/whisper; wizper has none.")
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] | None = None
    temperature: float | None = Field(None, ge=0.0, le=1.0, description="Accepted, ignored.")


class TranscriptionForm(TranslationForm):
    """audio.transcriptions, as multipart/form-data."""

    language: str | None = Field(None, description="The spoken language (e.g. `en`).")


def parse_image_request(body: bytes) -> ImageGenerationRequest:
    request = _parse(ImageGenerationRequest, body)
    if request.stream:
        raise unsupported("stream", "is not supported: fal's image apps answer once.")
    return request


def parse_speech_request(body: bytes) -> SpeechRequest:
    request = _parse(SpeechRequest, body)
    if request.stream_format not in (None, "audio"):
        raise unsupported("stream_format", "must be 'audio': the audio is streamed as bytes.")
    return request


def _parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> ProxyError:
    """pydantic's first error as OpenAI's 400."""
    first = exc.errors(include_url=False)[0]
    kind = first["type"]
    if kind == "json_invalid" or (kind == "model_type" and not first["loc"]):
        return invalid_request(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        )
    param = ".".join(str(p) for p in first["loc"])
    if kind == "missing":
        return invalid_request(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    code = "invalid_type" if kind.endswith(("_type", "_parsing")) else "invalid_value"
    return invalid_request(f"Invalid '{param}': {first['msg']}.", param, code)


# -- multipart forms ------------------------------------------------------------------------


@dataclass(frozen=True)
class FormFile:
    field: str  # the form field, `image[]` named `image`
    filename: str
    content_type: str
    data: bytes


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[FormFile]] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value if value not in (None, "") else None

    def require(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise invalid_request(
                f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
            )
        return value

    def number(self, name: str, kind: type[int] | type[float], low: float, high: float) -> Any:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = kind(raw)
        except ValueError:
            raise invalid_request(
                f"Invalid '{name}': expected a number, got {raw[:40]!r}.", name, "invalid_type"
            ) from None
        if not low <= value <= high:
            raise invalid_request(
                f"Invalid '{name}': must be between {low:g} and {high:g}.", name, "invalid_value"
            )
        return value

    def choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        value = self.text(name)
        if value is not None and value not in allowed:
            raise invalid_request(
                f"Invalid value for '{name}': {value[:40]!r}. Supported values are: "
                + ", ".join(f"'{a}'" for a in allowed)
                + ".",
                name,
                "invalid_value",
            )
        return value


async def read_form(request: Request, *, max_files: int, max_file_bytes: int) -> Form:
    """The multipart form, with text fields and file counts and sizes bounded.

    The whole body is also bounded by MAX_BODY_BYTES (413) in the middleware.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise invalid_request(
            "This endpoint takes a multipart/form-data body, as the OpenAI SDK sends it.",
            code="invalid_content_type",
        )
    parser = _WholeMultipart(
        request.headers,
        request.stream(),
        max_files=max_files,
        max_fields=_MAX_FIELDS,
        max_part_size=_MAX_FIELD_BYTES,
    )
    try:
        raw = await parser.parse()
    except MultiPartException as exc:  # python-multipart's refusal, as Starlette reports it
        raise invalid_request(
            f"Invalid multipart body: {exc.message}", code="invalid_body"
        ) from None
    form = Form()
    try:
        for name, value in raw.multi_items():
            key = name.removesuffix("[]")
            if isinstance(value, UploadFile):
                form.files.setdefault(key, []).append(await _read_file(key, value, max_file_bytes))
            else:
                form.fields[key] = value
    finally:
        await raw.close()
    return form


class _WholeMultipart(MultiPartParser):
    """Starlette's parser, refusing a body that ends before its closing boundary (python-
    multipart's `finalize` does not check it yet): its last part may be cut short."""

    ended = False

    def on_end(self) -> None:
        self.ended = True

    async def parse(self) -> FormData:
        form = await super().parse()
        if not self.ended:
            await form.close()
            raise MultiPartException("the body ends before its closing boundary")
        return form


async def _read_file(name: str, upload: UploadFile, limit: int) -> FormFile:
    if upload.size is not None and upload.size > limit:
        raise _too_big(name, limit)
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise _too_big(name, limit)
    return FormFile(
        name,
        upload.filename or "",
        (upload.content_type or "").split(";")[0].strip().lower(),
        data,
    )


def _too_big(name: str, limit: int) -> ProxyError:
    return invalid_request(
        f"Invalid '{name}': the file is larger than {limit} bytes.", name, "file_too_large"
    )
