"""docs/errors.md is the table of upstream failures -> what the client sees; this test holds
it to `translate/errors.py`, row by row, in both directions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fal_openai_proxy.fal.errors import (
    FalBrokenError,
    FalConnectError,
    FalError,
    FalEventError,
    FalIncompleteStream,
    FalRequestInvalid,
    FalResponseTooLarge,
    FalStatusError,
    FalTimeout,
    FalTLSError,
    FalUnsafeURL,
    KeysUnavailable,
    UpstreamProviderError,
    UpstreamStreamError,
)
from fal_openai_proxy.fal.media_fetch import FileTooLarge
from fal_openai_proxy.translate.errors import to_openai_error

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"

# One example failure per row id of the table.
EXAMPLES: dict[str, tuple[FalError, bool]] = {
    "fal-422": (FalStatusError(422, "prompt: too long"), False),
    "fal-400": (FalStatusError(400, "bad"), False),
    "fal-404": (FalStatusError(404, "no such app"), False),
    "fal-401-server-key": (FalStatusError(401, "no"), False),
    "fal-403-server-key": (FalStatusError(403, "Forbidden"), False),
    "fal-403-locked": (FalStatusError(403, "User is locked. Reason: Exhausted balance."), True),
    "fal-401-pass-through": (FalStatusError(401, "no"), True),
    "fal-429": (FalStatusError(429, "slow down", retry_after=2), False),
    "fal-500": (FalStatusError(500, "runner error"), False),
    "fal-502": (FalStatusError(502, "bad gateway"), False),
    "fal-503": (FalStatusError(503, "runner disconnected"), False),
    "fal-504": (FalStatusError(504, "request timeout"), False),
    "queue-499": (FalStatusError(499, "cancelled", error_type="client_cancelled"), False),
    "event-error": (FalEventError("boom"), False),
    "incomplete-stream": (FalIncompleteStream("ended while partial"), False),
    "timeout": (FalTimeout("idle", 1), False),
    "connect": (FalConnectError("refused"), False),
    "tls": (FalTLSError("bad certificate"), False),
    "broken": (FalBrokenError("closed"), False),
    "unsafe-url": (FalUnsafeURL("http"), False),
    "too-large": (FalResponseTooLarge("80 MB"), False),
    "media-too-large": (FileTooLarge("40 files"), False),
    "request-invalid": (FalRequestInvalid("line break in key"), False),
    "keys-auth": (KeysUnavailable("auth", 0), False),
    "keys-rate-limited": (KeysUnavailable("rate_limited", 3), False),
    "keys-busy": (KeysUnavailable("busy", 3), False),
    "provider-401": (UpstreamProviderError(401, "no auth", None, None), False),
    "provider-402": (UpstreamProviderError(402, "no credit", None, None), False),
    "provider-403": (UpstreamProviderError(403, "flagged", None, None), False),
    "provider-429": (UpstreamProviderError(429, "slow down", None, 2), False),
    "provider-500": (UpstreamProviderError(500, "provider down", None, None), False),
    "provider-stream-error": (UpstreamStreamError("provider failed mid-stream"), False),
}

ROW = re.compile(r"^\| `([a-z0-9-]+)` \|[^|]*\| (\d{3}) \| `([a-z_]+)` \| (`([a-z_]+)`|null) \|$")


def rows() -> dict[str, tuple[int, str, str | None]]:
    found: dict[str, tuple[int, str, str | None]] = {}
    for line in DOC.read_text().splitlines():
        if match := ROW.match(line):
            found[match[1]] = (int(match[2]), match[3], match[5])
    return found


def test_every_example_has_a_row_and_every_row_an_example() -> None:
    assert set(rows()) == set(EXAMPLES)


@pytest.mark.parametrize("row_id", sorted(EXAMPLES))
def test_the_row_says_what_the_client_gets(row_id: str) -> None:
    exc, pass_through = EXAMPLES[row_id]
    error = to_openai_error(exc, pass_through=pass_through)
    assert rows()[row_id] == (error.status, error.type, error.code)
