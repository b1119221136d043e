"""How many bytes of multipart bodies (image edits, transcriptions) a process holds at once.

A multipart body's files end up in memory (read from the form, then sent to fal as a data URI
or a storage upload) for the request's whole life. Twenty parallel 16 MiB uploads once
peaked at 835 MiB. Each multipart request reserves its declared Content-Length (MAX_BODY_BYTES
without one) before its body is read; a request that does not fit waits, first come first
served, up to half of BODY_TIMEOUT, then gets 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ..openai.errors import SERVER_ERROR, ProxyError


class UploadGate:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def used(self) -> int:
        return self._used

    async def acquire(self, size: int, patience: float) -> int:
        """Reserve `size` bytes (at most the whole capacity: one upload alone always fits),
        waiting up to `patience` seconds; the amount to `release` later."""
        size = min(max(size, 0), self._capacity)
        if not self._waiters and self._used + size <= self._capacity:
            self._used += size
            return size
        waiter = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(patience):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release(size)  # granted, but leaving: give it on
            else:
                self._waiters.remove(entry)
                self._wake()  # a smaller request behind this one may fit now
            if isinstance(exc, TimeoutError):
                raise busy() from None
            raise
        return size

    def release(self, size: int) -> None:
        self._used -= size
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            size, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if self._used + size > self._capacity:
                return
            self._waiters.popleft()
            self._used += size
            waiter.set_result(None)


def busy() -> ProxyError:
    return ProxyError(
        503,
        "Too many uploads in progress on this server (see MAX_UPLOAD_BYTES_IN_FLIGHT); "
        "retry shortly.",
        type=SERVER_ERROR,
        code="too_many_uploads",
        headers={"Retry-After": "1"},
    )
