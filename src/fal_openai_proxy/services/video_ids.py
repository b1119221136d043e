"""Video ids that carry what is needed to find the job again, signed so that they cannot be
forged or altered: any replica answers `retrieve` and `content` from the id alone.

`video_<payload>.<signature>`: the payload is a compact JSON array, base64url; the signature
is HMAC-SHA256 over it (128 bits kept). The payload names the fal app, fal's request id, a tag
of the fal key that submitted it, a tag of the client that created it, and what the video
object reports (created_at, model, seconds, size; for a remix, its source). Tags are HMACs
too: neither a key nor a client id can be read back from an id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, replace
from typing import Any

import orjson

PREFIX = "video_"
_VERSION = 1
_SIG_BYTES = 16
MAX_ID_CHARS = 2048  # two payloads (a remix and its source) stay far below this


@dataclass(frozen=True)
class VideoRef:
    """What a video id says."""

    app: str
    request_id: str
    key_tag: str  # "" when the client's own fal key submitted it (pass-through)
    owner: str
    created_at: int
    model: str
    seconds: str
    size: str
    source: VideoRef | None = None  # the video this one remixes

    def _fields(self) -> list[Any]:
        fields: list[Any] = [
            _VERSION, self.app, self.request_id, self.key_tag, self.owner, self.created_at,
            self.model, self.seconds, self.size,
        ]  # fmt: skip
        if self.source is not None:
            fields.append(replace(self.source, source=None)._fields())
        return fields


class VideoIds:
    """Signs and checks video ids with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, label: str, data: bytes, size: int) -> bytes:
        return hmac.new(self._secret, label.encode() + b"\0" + data, hashlib.sha256).digest()[:size]

    def owner_tag(self, client_id: str) -> str:
        return _b64(self._mac("owner", client_id.encode(), 9))

    def key_tag(self, key: str) -> str:
        return _b64(self._mac("key", key.encode(), 6))

    def encode(self, ref: VideoRef) -> str:
        payload = _b64(orjson.dumps(ref._fields()))
        return f"{PREFIX}{payload}.{_b64(self._mac('id', payload.encode(), _SIG_BYTES))}"

    def decode(self, video_id: str) -> VideoRef | None:
        """The id's content, or None if it is malformed or not signed with this secret."""
        if not video_id.startswith(PREFIX) or len(video_id) > MAX_ID_CHARS:
            return None
        payload, dot, signature = video_id[len(PREFIX) :].partition(".")
        if not dot:
            return None
        expected = _b64(self._mac("id", payload.encode(), _SIG_BYTES))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return None
        try:
            fields = orjson.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return None
        return _ref(fields)


def _ref(fields: Any) -> VideoRef | None:
    if not isinstance(fields, list) or len(fields) not in (9, 10) or fields[0] != _VERSION:
        return None
    _, app, request_id, key_tag, owner, created_at, model, seconds, size, *rest = fields
    texts = (app, request_id, key_tag, owner, model, seconds, size)
    if not all(isinstance(t, str) for t in texts) or not isinstance(created_at, int):
        return None
    source = _ref(rest[0]) if rest else None
    if rest and source is None:
        return None
    return VideoRef(app, request_id, key_tag, owner, created_at, model, seconds, size, source)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_secret(*parts: str) -> bytes:
    """A signing secret derived from other secrets (VIDEO_ID_SECRET unset)."""
    return hashlib.sha256(b"fal-openai-proxy video ids\0" + "\0".join(parts).encode()).digest()
