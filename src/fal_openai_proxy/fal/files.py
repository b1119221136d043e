"""Files on fal's side: reading the outputs fal links to, and uploading large inputs.

Outputs are public URLs on fal's CDN (docs/fal-protocol.md §10: "public, and kept ≥ 7 days").
They are fetched WITHOUT the fal key (a URL in fal's answer could point anywhere), only over
http(s), and bounded in size and time. Uploads follow fal-js `storage.ts`
(docs/fal-protocol.md §12.1): POST {rest}/storage/upload/initiate with the key, then PUT the
bytes to the signed `upload_url` (no key), and give fal the `file_url`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from ..base.metrics import Metrics
from .decode import loads_object
from .errors import (
    FalBrokenError,
    FalError,
    FalRequestInvalid,
    FalStatusError,
    parse_error_response,
)
from .keys import KeyLease, KeyPool
from .retry import CallStarter
from .timeouts import deadline
from .transport import StreamingResponse, Transport
from .wire import is_success, key_headers

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/webm": "webm",
}


class FileTooLarge(FalError):
    """A file fal linked to is larger than MAX_MEDIA_BYTES."""

    @property
    def kind(self) -> str:
        return "media_too_large"


@dataclass(frozen=True)
class FalFiles:
    http: Transport
    rest_url: str
    starter: CallStarter
    max_bytes: int
    timeout: float
    total_timeout: float

    @classmethod
    def build(
        cls,
        http: Transport,
        *,
        rest_url: str,
        pool: KeyPool | None,
        retry_budget: float,
        metrics: Metrics,
        max_bytes: int,
        timeout: float,
        total_timeout: float,
    ) -> FalFiles:
        starter = CallStarter(pool, retry_budget, metrics)
        return cls(http, rest_url, starter, max_bytes, timeout, total_timeout)

    # -- outputs ------------------------------------------------------------------------------

    async def fetch(self, url: str) -> tuple[bytes, str]:
        """The whole file and its content type."""
        response = await self.open(url)
        parts: list[bytes] = []
        async for chunk in self.chunks(response):
            parts.append(chunk)
        return b"".join(parts), response.headers.get("content-type", "")

    async def open(self, url: str) -> StreamingResponse:
        """GET a fal output URL; its body is then read with `chunks`."""
        if not url.lower().startswith(("http://", "https://")):
            raise FalRequestInvalid("fal returned a file URL that is not http(s)")
        async with deadline(self.timeout, "first_event", None):
            response = await self.http.open("GET", url, {"Accept": "*/*"})
        if response.status != 200:
            response.close()
            # fal's own answer was fine; its file is not: a failure of fal (502), not ours.
            raise FalStatusError(502, f"fal's file URL answered HTTP {response.status}")
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            response.close()
            raise FileTooLarge(f"fal's file is larger than {self.max_bytes} bytes")
        return response

    async def chunks(self, response: StreamingResponse) -> AsyncIterator[bytes]:
        """The body as it arrives, within MAX_MEDIA_BYTES and the idle/total timeouts."""
        total_deadline = asyncio.get_running_loop().time() + self.total_timeout
        seen = 0
        try:
            while True:
                async with deadline(self.timeout, "idle", total_deadline, self.total_timeout):
                    chunk = await response.read_chunk()
                if not chunk:
                    return
                seen += len(chunk)
                if seen > self.max_bytes:
                    raise FileTooLarge(f"fal's file is larger than {self.max_bytes} bytes")
                yield chunk
        finally:
            response.close()

    # -- inputs -------------------------------------------------------------------------------

    async def upload(self, data: bytes, content_type: str, client_key: str | None) -> str:
        """Put `data` on fal's storage; the public URL to give fal as input."""
        loop = asyncio.get_running_loop()
        total_deadline = loop.time() + self.total_timeout
        name = f"{int(time.time() * 1000)}.{_EXTENSIONS.get(content_type, 'bin')}"
        body = orjson.dumps({"content_type": content_type, "file_name": name})
        url = f"{self.rest_url}/storage/upload/initiate?storage_type=fal-cdn-v3"

        async def initiate(lease: KeyLease) -> dict[str, object]:
            headers = key_headers(lease.key)
            async with deadline(self.timeout, "first_event", total_deadline, self.total_timeout):
                reply = await self.http.send("POST", url, headers, body)
            if not is_success(reply.status):
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            return loads_object(reply.body)

        answer, lease = await self.starter.start(initiate, client_key, total_deadline)
        lease.release()
        upload_url, file_url = answer.get("upload_url"), answer.get("file_url")
        if not isinstance(upload_url, str) or not isinstance(file_url, str):
            raise FalBrokenError("fal's storage answer has no upload_url or file_url")
        if not upload_url.lower().startswith(("http://", "https://")):
            raise FalRequestInvalid("fal's storage upload URL is not http(s)")
        async with deadline(self.total_timeout, "total", total_deadline, self.total_timeout):
            reply = await self.http.send("PUT", upload_url, {"Content-Type": content_type}, data)
        # Any 2xx, as fal-js `storage.ts` checks `response.ok` (docs/fal-protocol.md §12.1).
        if not is_success(reply.status):
            raise parse_error_response(reply.status, reply.headers, reply.body)
        return file_url
