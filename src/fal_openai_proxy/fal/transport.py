"""The seam between fal's protocol and the bytes: what `FalClient` needs of an HTTP client.

`http.HttpClient` is the real one; tests can pass anything with these methods, as httpx's
tests use `MockTransport`, to drive `FalClient` without sockets.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, Protocol


class Reply(Protocol):
    """A whole response."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> bytes: ...


class StreamingResponse(Protocol):
    """A response whose headers have arrived and whose body is read piece by piece."""

    status: int
    headers: Mapping[str, str]

    async def read_chunk(self) -> bytes:
        """The body bytes that have arrived; b"" at the end."""
        ...

    async def read_body(self) -> bytes: ...

    def close(self) -> None:
        """Drop the connection (fal cancels a direct request whose connection closes)."""
        ...

    def finish_in_background(self, timeout: float = 1.0) -> None:
        """Read the rest in the background so that the connection can be reused."""
        ...


class Transport(Protocol):
    async def open(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        all_headers: bool = False,
    ) -> StreamingResponse: ...

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Reply: ...

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run cleanup work in the background."""
        ...

    async def close(self) -> None: ...
