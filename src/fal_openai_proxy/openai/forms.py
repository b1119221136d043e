"""Multipart forms (images.edit, audio): text fields and files read with bounds; every
refusal is a 400 naming the field, as OpenAI's are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from .errors import ProxyError, invalid_request

# A form's text fields are short; files are bounded separately (MAX_FILE_BYTES).
_MAX_FIELD_BYTES = 64 * 1024
_MAX_FIELDS = 64


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

    def boolean(self, name: str) -> bool:
        """`true` or `false` as the SDKs send them (absent: false)."""
        value = self.text(name)
        if value is None or value.lower() == "false":
            return False
        if value.lower() == "true":
            return True
        raise invalid_request(
            f"Invalid '{name}': expected true or false, got {value[:40]!r}.", name, "invalid_type"
        )

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
