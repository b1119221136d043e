"""POST /v1/completions, OpenAI's legacy text completions, validated as OpenAI does; what fal's
prompt apps cannot honour is refused with a 400 naming the field, never answered wrongly."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from .base import OpenAIModel, parse_json
from .chat import INT64, MAX_MODEL_ID, MAX_STOP, MAX_STOP_CHARS, TOKENS, StreamOptions
from .errors import invalid_request, unsupported

# fal's prompt apps take text; a token id is one tokenizer's number.
_NO_TOKENS = "token ids are not supported: send the prompt as text."


class CompletionRequest(OpenAIModel):
    """OpenAI's `CreateCompletionRequest`; unknown fields are accepted and ignored."""

    model: str = Field(min_length=1, max_length=MAX_MODEL_ID)
    # A string, or OpenAI's other forms (checked in `parse_completion_body`).
    prompt: str | list[Any]
    suffix: str | None = None
    max_tokens: int | None = Field(None, ge=1, le=TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    best_of: int | None = Field(None, ge=0, le=20)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = None
    stop: (
        Annotated[str, Field(max_length=MAX_STOP_CHARS)]
        | Annotated[
            list[Annotated[str, Field(max_length=MAX_STOP_CHARS)]], Field(max_length=MAX_STOP)
        ]
        | None
    ) = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = Field(
        None, max_length=300
    )
    seed: int | None = Field(None, ge=-INT64, lt=INT64)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None

    @property
    def text(self) -> str:
        """The one prompt, as text (after `parse_completion_body`)."""
        return self.prompt if isinstance(self.prompt, str) else str(self.prompt[0])

    @property
    def stop_sequences(self) -> list[str]:
        items = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return [s for s in items if s]

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def parse_completion_body(body: bytes) -> CompletionRequest:
    request = parse_json(CompletionRequest, body)
    _check_prompt(request.prompt)
    _check_supported(request)
    return request


def _check_prompt(prompt: str | list[Any]) -> None:
    if isinstance(prompt, str):
        return
    if not prompt:
        raise invalid_request(
            "Invalid 'prompt': empty array. Expected a string.", "prompt", "empty_array"
        )
    first = prompt[0]
    if isinstance(first, int | list) and not isinstance(first, bool):
        raise invalid_request(f"Invalid 'prompt': {_NO_TOKENS}", "prompt", "invalid_type")
    if not all(isinstance(item, str) for item in prompt):
        raise invalid_request(
            "Invalid type for 'prompt': expected a string or an array of strings.",
            "prompt",
            "invalid_type",
        )
    if len(prompt) > 1:
        raise unsupported("prompt", "must be one string: one completion per request here.")


def _check_supported(request: CompletionRequest) -> None:
    if request.suffix:
        raise unsupported(
            "suffix",
            "is not supported: no fal app does fill-in-the-middle (insertion); send the text "
            "before the cursor as `prompt` only.",
        )
    if request.n is not None and request.n > 1:
        raise unsupported("n", "must be 1: fal's prompt apps return a single completion.")
    if request.best_of is not None and request.best_of > 1:
        raise unsupported("best_of", "must be 1: fal's prompt apps return a single completion.")
    if request.logprobs is not None:
        raise unsupported("logprobs", "is not supported: fal does not return log probabilities.")
    if request.echo:
        raise unsupported("echo", "is not supported: send the prompt back yourself.")
    if request.stream_options is not None and not request.stream:
        raise invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
