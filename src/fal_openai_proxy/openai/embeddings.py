"""POST /v1/embeddings: the body goes to fal's OpenAI route as it is, once checked."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .base import CheckedBody, OpenAIModel, fail, json_object, model_id
from .errors import unsupported

_Text = Annotated[str, Field(min_length=1)]


class EmbeddingsRequest(OpenAIModel):
    """POST /v1/embeddings: fal's vectors come back unchanged."""

    model_config = ConfigDict(extra="allow")  # described for OpenAPI: the rest passes through

    model: str = Field(min_length=1)
    input: _Text | Annotated[list[_Text], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    stream: Literal[False] | None = None


# Token ids are one tokenizer's numbers; the proxy takes text, whichever model embeds it.
TOKEN_IDS = (
    "expected a string; token-id arrays are not supported, send the text itself. LangChain's "
    "OpenAIEmbeddings sends token ids by default: create it with "
    "check_embedding_ctx_length=False."
)


def parse_embeddings_request(raw: bytes) -> CheckedBody:
    body = json_object(raw)
    model = model_id(body)
    value = body.get("input")
    if value is None:
        fail("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if isinstance(value, str):
        if not value:
            fail("Invalid 'input': the string is empty.", "input", "invalid_value")
    elif isinstance(value, list):
        if not value:
            fail("Invalid 'input': empty array. Expected at least one string.", "input",
                  "empty_array")  # fmt: skip
        for index, item in enumerate(value):
            if isinstance(item, int | list) and not isinstance(item, bool):
                fail(f"Invalid type for 'input[{index}]': {TOKEN_IDS}", f"input[{index}]",
                     "invalid_type")  # fmt: skip
            if not isinstance(item, str):
                fail(f"Invalid type for 'input[{index}]': expected a string.", f"input[{index}]",
                      "invalid_type")  # fmt: skip
            if not item:
                fail(f"Invalid 'input[{index}]': the string is empty.", f"input[{index}]",
                      "invalid_value")  # fmt: skip
    else:
        fail("Invalid type for 'input': expected a string or an array of strings.", "input",
              "invalid_type")  # fmt: skip
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        fail("Invalid value for 'encoding_format': expected 'float' or 'base64'.",
              "encoding_format", "invalid_value")  # fmt: skip
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        fail("Invalid 'dimensions': expected an integer of at least 1.", "dimensions",
              "invalid_value")  # fmt: skip
    if body.get("stream"):
        raise unsupported("stream", "is not supported for embeddings.")
    return CheckedBody(body, model, False)
