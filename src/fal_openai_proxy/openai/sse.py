"""A raw-ASGI event-stream response that stops the moment the client leaves.

Starlette's StreamingResponse notices a departed client only at its next write; a proxy
waiting on a silent upstream must notice at once, to close the fal connection. One watcher
task per request listens for `http.disconnect` and cancels the request's own task.
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
    """The client disconnected before the answer was complete."""


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Watch:
    __slots__ = ("active", "gone")

    def __init__(self) -> None:
        self.active = True
        self.gone = False


@contextlib.asynccontextmanager
async def cancelled_on_disconnect(receive: Receive) -> AsyncIterator[None]:
    """Run the body; if the client disconnects, cancel it (its cleanup runs) and raise
    ClientGone."""
    task = asyncio.current_task()
    assert task is not None
    watch = _Watch()

    def on_disconnect(watcher: asyncio.Future[None]) -> None:
        # `active` guards against a callback already scheduled when the body finished.
        if watch.active and not watcher.cancelled() and watcher.exception() is None:
            watch.gone = True
            task.cancel()

    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    watcher.add_done_callback(on_disconnect)
    try:
        yield
    except asyncio.CancelledError:
        if watch.gone:
            task.uncancel()
            raise ClientGone() from None
        raise
    finally:
        watch.active = False
        watcher.cancel()


async def until_disconnect(work: Awaitable[T], receive: Receive) -> T:
    """Await `work`, cancelling it (and running its cleanup) if the client disconnects."""
    async with cancelled_on_disconnect(receive):
        return await work
    raise AssertionError("unreachable")  # for type checkers: the body always returns or raises


class EventStreamResponse(Response):
    def __init__(self, frames: AsyncIterator[bytes]) -> None:
        self.status_code = 200
        self.background = None
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        try:
            async with cancelled_on_disconnect(receive):
                async for frame in self._frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except ClientGone:
            pass
        finally:
            await _aclose(self._frames)


async def _aclose(frames: AsyncIterator[bytes]) -> None:
    close = getattr(frames, "aclose", None)
    if close is not None:
        await close()
