"""The error statuses the endpoints' OpenAPI operations name (docs/errors.md has the table)."""

from __future__ import annotations

from .registry import JSON

SSE = (JSON, "text/event-stream")
ERRORS = {
    400: "Invalid request (the field is named in `error.param`).",
    401: "Missing or wrong client key.",
    402: "The model provider behind fal's OpenAI route needs more credit.",
    403: "The model provider behind fal's OpenAI route refused the request (e.g. moderation).",
    404: "Unknown model.",
    413: "Body over MAX_BODY_BYTES.",
    429: "A per-client limit, or every fal key busy; see `Retry-After`.",
    502: "fal failed or could not be reached.",
    503: "fal unavailable, or the server is draining.",
    504: "fal or the proxy timed out.",
}
OPENROUTER_ERRORS = {s: ERRORS[s] for s in (400, 401, 402, 403, 413, 429, 502, 503, 504)}
MEDIA_ERRORS = {s: ERRORS[s] for s in (400, 401, 413, 429, 502, 503, 504)}
