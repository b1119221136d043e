"""Files on fal's side: reading the outputs fal links to, and uploading large inputs.

Outputs are public URLs on fal's CDN (docs/fal-protocol.md §10: "public, and kept ≥ 7 days").
They are fetched WITHOUT the fal key, through the one guard for URLs fal names
(`media_fetch.py`: fal's media hosts only, no private addresses, bounded in size and time
per file and per request). Uploads follow fal-js `storage.ts`
(docs/fal-protocol.md §12.1): POST {rest}/storage/upload/initiate with the key, then PUT the
bytes to the signed `upload_url` (no key), and give fal the `file_url`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from ..base.metrics import Metrics
from .decode import loads_object
from .errors import FalBrokenError, parse_error_response
from .keys import KeyLease, KeyPool
from .media_fetch import MediaBudget, MediaFetcher
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


@dataclass(frozen=True)
class FalFiles:
    http: Transport  # fal's API (the storage initiate call, with the key)
    media: MediaFetcher  # every URL fal names: outputs and upload URLs (no key)
    rest_url: str
    starter: CallStarter
    timeout: float

    @classmethod
    def build(
        cls,
        http: Transport,
        media: MediaFetcher,
        *,
        rest_url: str,
        pool: KeyPool | None,
        retry_budget: float,
        metrics: Metrics,
        timeout: float,
    ) -> FalFiles:
        starter = CallStarter(pool, retry_budget, metrics)
        return cls(http, media, rest_url, starter, timeout)

    # -- outputs ------------------------------------------------------------------------------

    def budget(self) -> MediaBudget:
        """What one request may fetch in all (bytes, and time to its deadline): call it
        when the request begins, and pass it to every fetch and upload of the request."""
        return self.media.budget()

    async def fetch(self, url: str, budget: MediaBudget) -> tuple[bytes, str]:
        """The whole file and its content type."""
        return await self.media.fetch(url, budget)

    async def open(self, url: str, budget: MediaBudget) -> StreamingResponse:
        """GET a fal output URL; its body is then read with `chunks`."""
        return await self.media.open(url, budget)

    def chunks(self, response: StreamingResponse, budget: MediaBudget) -> AsyncIterator[bytes]:
        """The body as it arrives, within MAX_MEDIA_BYTES, the request's budget and the
        idle timeout."""
        return self.media.chunks(response, budget)

    # -- inputs -------------------------------------------------------------------------------

    async def upload(
        self, data: bytes, content_type: str, client_key: str | None, budget: MediaBudget
    ) -> str:
        """Put `data` on fal's storage, within the request's deadline; the public URL to
        give fal as input."""
        total_deadline, total_timeout = budget.deadline, budget.seconds
        name = f"{int(time.time() * 1000)}.{_EXTENSIONS.get(content_type, 'bin')}"
        body = orjson.dumps({"content_type": content_type, "file_name": name})
        url = f"{self.rest_url}/storage/upload/initiate?storage_type=fal-cdn-v3"

        async def initiate(lease: KeyLease) -> dict[str, object]:
            headers = key_headers(lease.key)
            async with deadline(self.timeout, "first_event", total_deadline, total_timeout):
                reply = await self.http.send("POST", url, headers, body)
            if not is_success(reply.status):
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            return loads_object(reply.body)

        answer, lease = await self.starter.start(initiate, client_key, total_deadline)
        lease.release()
        upload_url, file_url = answer.get("upload_url"), answer.get("file_url")
        if not isinstance(upload_url, str) or not isinstance(file_url, str):
            raise FalBrokenError("fal's storage answer has no upload_url or file_url")
        self.media.policy.check(upload_url)  # fal's media hosts only, as every file URL
        async with deadline(total_timeout, "total", total_deadline, total_timeout):
            reply = await self.media.http.send(
                "PUT", upload_url, {"Content-Type": content_type}, data
            )
        # Any 2xx, as fal-js `storage.ts` checks `response.ok` (docs/fal-protocol.md §12.1).
        if not is_success(reply.status):
            raise parse_error_response(reply.status, reply.headers, reply.body)
        return file_url
