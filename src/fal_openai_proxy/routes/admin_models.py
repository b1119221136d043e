"""The admin API's bodies and answers (docs/accounts.md), as pydantic models: the request
models validate, the answer models describe the JSON in /openapi.json."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from ..store.periods import Period

MAX_METADATA_BYTES = 16 * 1024
Glob = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^\S+$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Usd = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Rpm = Annotated[StrictInt, Field(ge=1, le=1_000_000)]
UnixTime = Annotated[StrictInt, Field(ge=0, le=32_503_680_000)]  # up to the year 3000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _KeyFields(_Strict):
    models: list[Glob] | None = Field(
        None,
        max_length=200,
        description="Globs of the models the key may use (`openai/*`, `fal-ai/flux/*`); "
        "absent or null: every model.",
        examples=[["openai/*", "google/gemini-2.5-flash"]],
    )
    max_budget: Usd | None = Field(
        None, description="USD the key may spend (per `budget_period`); null: no budget."
    )
    budget_period: Period | None = Field(
        None,
        description="`day`, `week` (from Monday) or `month`, in UTC; null: `max_budget` is "
        "for the key's whole life.",
    )
    rpm: Rpm | None = Field(None, description="Requests per minute; null: no limit of its own.")
    expires_at: UnixTime | None = Field(
        None, description="Unix time after which the key is refused; null: never."
    )
    metadata: dict[str, Any] | None = Field(
        None, description=f"Any JSON object of yours, up to {MAX_METADATA_BYTES} bytes."
    )

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(orjson.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
        return value


class KeyCreate(_KeyFields):
    """POST /admin/keys."""

    name: Name = Field(description="Who or what the key is for; labels its metrics.")


class KeyUpdate(_KeyFields):
    """PATCH /admin/keys/{id}: only the fields sent change (null clears a limit)."""

    name: Name | None = None
    disabled: StrictBool | None = Field(None, description="true: refused until set to false.")

    @field_validator("name", "disabled")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class KeyObject(BaseModel):
    """A virtual key (never its secret)."""

    id: str
    name: str
    key_hint: str = Field(description="The secret's last four characters.")
    models: list[str] | None
    max_budget: float | None
    budget_period: Literal["day", "week", "month"] | None
    rpm: int | None
    expires_at: int | None
    metadata: dict[str, Any]
    created_at: int
    disabled: bool
    spend: float = Field(description="USD spent in the key's life (unknown costs count as 0).")
    period_spend: float = Field(description="USD spent in the current period.")
    period_resets_at: int | None = Field(description="Unix time of the next reset.")


class KeyCreated(KeyObject):
    key: str = Field(description="The secret, `sk-fal-…`: shown this one time only.")


class KeyList(BaseModel):
    object: Literal["list"]
    data: list[KeyObject]


class KeyDeleted(BaseModel):
    id: str
    deleted: Literal[True]


class OwnKey(BaseModel):
    """GET /v1/key: the calling virtual key."""

    name: str
    key_hint: str
    models: list[str] | None
    max_budget: float | None
    budget_period: Literal["day", "week", "month"] | None
    spend: float
    period_spend: float
    budget_remaining: float | None = Field(description="USD left in this period; null: no budget.")
    period_resets_at: int | None
    rpm: int | None


class UsageGroup(BaseModel):
    group: str = Field(description="A key id, model id, day (YYYY-MM-DD) or endpoint.")
    name: str | None = Field(None, description="group_by=key only: the key's name.")
    requests: int
    errors: int = Field(description="Requests answered with a status of 400 or more.")
    input_tokens: int
    output_tokens: int
    images: int
    audio_seconds: float = Field(description="Audio in and out.")
    video_seconds: float
    cost: float = Field(description="USD, where known (unknown costs count as 0).")


class UsageList(BaseModel):
    object: Literal["list"]
    data: list[UsageGroup]
    start: str
    end: str
    group_by: Literal["key", "model", "day", "endpoint"]


class RequestEntry(BaseModel):
    """One request of the request log."""

    id: int
    created_at: float = Field(description="Unix time the request arrived.")
    request_id: str
    key_id: str = Field(
        description="A virtual key's id, `static`, `passthrough:<fingerprint>` or `open`."
    )
    key_name: str | None
    endpoint: str
    model: str | None
    route: str | None
    fal_app: str | None
    fal_request_id: str | None
    status: int
    error_type: str | None
    latency_ms: float
    ttfb_ms: float | None
    stream: bool | None
    input_tokens: int | None
    output_tokens: int | None
    images: int | None
    audio_seconds_in: float | None
    audio_seconds_out: float | None
    video_seconds: float | None
    cost: float | None = Field(description="USD; null: unknown.")
    cost_source: str | None
    billable_units: float | None
    prompt: str | None = Field(description="LOG_PROMPTS only: the input sent to fal.")
    answer: str | None = Field(description="LOG_PROMPTS only: the answer.")


class RequestList(BaseModel):
    object: Literal["list"]
    data: list[RequestEntry]
    first_id: int | None
    last_id: int | None
    has_more: bool
