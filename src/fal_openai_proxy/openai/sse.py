"""A raw-ASGI event-stream response that stops its producer the moment the client leaves.

Starlette's StreamingResponse notices a departed client only at the next write; a proxy
waiting on a silent upstream must notice at once, to close the fal connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

T = TypeVar("T")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_disconnect(work: Awaitable[T], receive: Receive) -> T:
    """Await `work`, cancelling it (and running its cleanup) if the client disconnects."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        if not watcher.done():
            watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise ClientGone()


class EventStreamResponse(Response):
    def __init__(
        self, frames: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.status_code = 200
        self.background = None
        self._frames = frames
        self._sse_headers = SSE_HEADERS + (headers or [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._sse_headers})
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            await asyncio.wait((producer, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, watcher):
                if not task.done():
                    task.cancel()
            # Let the producer's cleanup (closing the fal connection) run to the end.
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await producer
        if watcher.done() and not watcher.cancelled():
            return
        if producer.exception() is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _produce(self, send: Send) -> None:
        try:
            async for frame in self._frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        finally:
            await _aclose(self._frames)


async def _aclose(frames: AsyncIterator[bytes]) -> None:
    close = getattr(frames, "aclose", None)
    if close is not None:
        await close()
