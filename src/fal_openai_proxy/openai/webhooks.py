"""OpenAI's webhook events, signed the Standard Webhooks way, as OpenAI signs them: headers
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, the key being the base64-decoded part of a `whsec_…` secret, or
the secret's bytes otherwise (openai-python `lib/_webhooks.py`, `webhook_signature_matches`;
docs/fal-protocol.md §15.3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson


def video_event(event_id: str, kind: str, created_at: int, video_id: str) -> bytes:
    """`video.completed` / `video.failed`: `{id, object: "event", type, created_at, data}`."""
    body: dict[str, Any] = {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created_at": created_at,
        "data": {"id": video_id},
    }
    return orjson.dumps(body)


def signing_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode()


def signed_headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode("ascii"),
    }
