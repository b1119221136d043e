"""A fake of fal/transport.py's `Transport`, in the style of httpx's `MockTransport`: a handler
answers each request, and every request sent is recorded. No sockets."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class SentRequest(NamedTuple):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass
class FakeReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class FakeResponse:
    """A response whose body arrives in `chunks`."""

    status: int
    headers: Mapping[str, str]
    chunks: list[bytes]
    closed: bool = False

    async def read_chunk(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    async def read_body(self) -> bytes:
        body = b"".join(self.chunks)
        self.chunks.clear()
        return body

    def close(self) -> None:
        self.closed = True

    def finish_in_background(self, timeout: float = 1.0) -> None:
        self.closed = True


Handler = Callable[[SentRequest], FakeResponse | Exception]


@dataclass
class MockTransport:
    """Each request goes to `handler`, which answers it or names the exception to raise."""

    handler: Handler
    sent: list[SentRequest] = field(default_factory=list)

    @classmethod
    def table(cls, routes: dict[tuple[str, str], FakeResponse | Exception]) -> MockTransport:
        """Answers each (method, url) from `routes` (a KeyError for any other)."""
        return cls(lambda request: routes[(request.method, request.url)])

    async def open(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        all_headers: bool = False,
    ) -> FakeResponse:
        request = SentRequest(method, url, dict(headers), body)
        self.sent.append(request)
        answer = self.handler(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> FakeReply:
        response = await self.open(method, url, headers, body)
        return FakeReply(response.status, response.headers, await response.read_body())

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        work.close()

    async def close(self) -> None:
        pass
