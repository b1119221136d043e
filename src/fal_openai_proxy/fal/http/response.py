"""What callers of the HTTP client hold: a whole `Reply`, or an `OpenResponse` read piece by
piece."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import FalBrokenError, FalResponseTooLarge
from .connection import Connection

if TYPE_CHECKING:
    from .pool import HttpClient


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class OpenResponse:
    """A response whose headers have arrived and whose body is read piece by piece."""

    __slots__ = ("_client", "_conn", "headers", "status")

    def __init__(self, client: HttpClient, conn: Connection) -> None:
        self._client = client
        self._conn: Connection | None = conn
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers

    async def read_chunk(self) -> bytes:
        """Whatever body bytes have arrived (b"" at the end). Safe to cancel: nothing is
        lost, since bytes stay buffered until they are returned."""
        conn = self._conn
        if conn is None:
            return b""
        while not conn.chunks:
            if conn.complete:
                self.release()
                return b""
            try:
                await conn.wait()
            except FalBrokenError:
                self.close()
                raise
        return conn.take()

    async def read_body(self, limit: int | None = None) -> bytes:
        """The whole body, at most `limit` bytes (the client's `max_body_bytes` by default):
        a larger one is FalResponseTooLarge, found before it is all in memory."""
        limit = self._client.max_body_bytes if limit is None else limit
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.close()
            raise FalResponseTooLarge(f"the upstream's answer is over {limit} bytes")
        parts = []
        size = 0
        while chunk := await self.read_chunk():
            size += len(chunk)
            if size > limit:
                self.close()
                raise FalResponseTooLarge(f"the upstream's answer is over {limit} bytes")
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        """Drop the connection: fal cancels a direct request whose connection closes."""
        if self._conn is not None:
            if self._conn.complete:
                self.release()
            else:
                self._conn.close()
                self._conn = None

    def finish_in_background(self, timeout: float = 1.0) -> None:
        """Hand the rest of the body to a background reader that pools the connection
        when the response ends (or closes it if the end does not come within `timeout`)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client.track(self._client.drain(conn, timeout))

    def release(self) -> None:
        """Return a fully read connection to the pool (or close it)."""
        if self._conn is not None:
            self._client.give_back(self._conn)
            self._conn = None
