"""Anthropic's stream framing: every event is an `event: <type>` line and a `data:` line whose
JSON carries the same `type` (the SDK skips events without a name: `_streaming.py`)."""

from __future__ import annotations

from typing import Any

import orjson

# Sent while the upstream is silent, as Anthropic's own streams do.
PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def event(payload: dict[str, Any]) -> bytes:
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
