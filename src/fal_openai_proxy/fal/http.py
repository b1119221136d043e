"""The one place that knows which HTTP client talks to fal (aiohttp, chosen by benchmark).

Everything above this module sees `Reply`, `OpenResponse` and the errors in `errors.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from .errors import FalBrokenError, FalConnectError, FalTimeout

# Small read buffers keep the memory of many idle open streams low; fal events are small.
READ_BUFFER_BYTES = 16 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class OpenResponse:
    """A response whose headers have arrived and whose body is read piece by piece."""

    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read_chunk(self) -> bytes:
        """Whatever bytes have arrived (b"" at the end). Safe to cancel: nothing is lost."""
        try:
            return await self._response.content.readany()
        except aiohttp.ClientError as exc:
            raise FalBrokenError(type(exc).__name__) from None

    async def read_body(self) -> bytes:
        try:
            return await self._response.read()
        except aiohttp.ClientError as exc:
            raise FalBrokenError(type(exc).__name__) from None

    def close(self) -> None:
        """Drop the connection: fal cancels a direct request whose connection closes."""
        self._response.close()

    def release(self) -> None:
        """Return a fully read connection to the pool."""
        self._response.release()


class HttpClient:
    """One pooled, keep-alive client per process, created inside the running loop."""

    def __init__(self, *, connect_timeout: float, pool_size: int, user_agent: str) -> None:
        self._connect_timeout = connect_timeout
        self._pool_size = pool_size
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._pool_size, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
        )
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._connect_timeout, connect=self._connect_timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"User-Agent": self._user_agent},
            auto_decompress=True,
            read_bufsize=READ_BUFFER_BYTES,
            skip_auto_headers=("Accept-Encoding",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HttpClient.start() was not awaited")
        return self._session

    async def open(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> OpenResponse:
        """Send a request and wait for the response headers."""
        try:
            response = await self.session.request(method, url, headers=headers, data=body)
        except aiohttp.ServerTimeoutError:
            raise FalTimeout("connect", self._connect_timeout) from None
        except aiohttp.ClientConnectorError as exc:
            raise FalConnectError(type(exc).__name__) from None
        except aiohttp.ClientError as exc:
            raise FalBrokenError(type(exc).__name__) from None
        return OpenResponse(response)

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Reply:
        """Send a request and read the whole response."""
        response = await self.open(method, url, headers, body)
        try:
            data = await response.read_body()
        finally:
            response.release()
        return Reply(response.status, response.headers, data)
