"""A raw-ASGI event-stream response that stops the moment the client leaves.

Starlette's StreamingResponse notices a departed client only at its next write; a proxy
waiting on a silent upstream must notice at once, to close the fal connection. One watcher
task per request listens for `http.disconnect` and cancels the request's own task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ..base.watchdog import Watchdog

T = TypeVar("T")
log = logging.getLogger(__name__)
# Scope key of a callable that drops the client's connection at once (set by the server's
# protocol, `connection.py`); without it, the stream just ends.
ABORT_KEY = "fal_openai_proxy.abort"

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


class cancelled_on_disconnect:  # lower case: used like asyncio.timeout()
    """Run the body; if the client disconnects, cancel it (its cleanup runs) and raise
    ClientGone. A class rather than an @asynccontextmanager: it is on every request."""

    __slots__ = ("_active", "_gone", "_receive", "_task", "_watcher")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._active = True
        self._gone = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._watcher = asyncio.ensure_future(wait_for_disconnect(self._receive))
        self._watcher.add_done_callback(self._on_disconnect)

    def _on_disconnect(self, watcher: asyncio.Future[None]) -> None:
        # `_active` guards against a callback already scheduled when the body finished.
        if self._active and not watcher.cancelled() and watcher.exception() is None:
            self._gone = True
            self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._active = False
        self._watcher.cancel()
        if kind is asyncio.CancelledError and self._gone:
            self._task.uncancel()
            raise ClientGone() from None


async def until_disconnect(work: Awaitable[T], receive: Receive) -> T:
    """Await `work`, cancelling it (and running its cleanup) if the client disconnects."""
    async with cancelled_on_disconnect(receive):
        return await work
    raise AssertionError("unreachable")  # for type checkers: the body always returns or raises


class ClientStalled(Exception):
    """A write to the client waited WRITE_TIMEOUT: the client reads nothing."""


async def send_within(writes: Watchdog, send: Send, message: Message, seconds: float) -> None:
    """`send(message)`, raising ClientStalled if it waits `seconds` (uvicorn's send() waits,
    without a limit, for the socket to drain). A write the socket takes at once, the usual
    one, arms no timer (Watchdog.run)."""
    try:
        await writes.run(send(message), seconds)
    except TimeoutError:
        raise ClientStalled() from None


class EventStreamResponse(Response):
    """Frames from `frames`; if the server, shutting down, cancels the stream (see
    `server.DrainingServer`), the client gets `farewell` and the stream ends cleanly.
    A client that does not read for `write_timeout` seconds is dropped."""

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        open_streams: set[asyncio.Task[None]],
        farewell: bytes,
        write_timeout: float = 120.0,
    ) -> None:
        self.status_code = 200
        self.background = None
        self._frames = frames
        self._open_streams = open_streams
        self._farewell = farewell
        self._write_timeout = write_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task: asyncio.Task[None] = asyncio.current_task()  # type: ignore[assignment]
        self._open_streams.add(task)
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        writes = Watchdog()  # WRITE_TIMEOUT for each write that waits
        timeout = self._write_timeout
        try:
            async with cancelled_on_disconnect(receive):
                async for frame in self._frames:
                    message = {"type": "http.response.body", "body": frame, "more_body": True}
                    await send_within(writes, send, message, timeout)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except ClientGone:
            pass
        except ClientStalled:
            await _drop(scope, self._write_timeout)
        except asyncio.CancelledError:
            if task not in self._open_streams:  # removed by the drain: say goodbye
                task.uncancel()
                await _aclose(self._frames)
                await send({"type": "http.response.body", "body": self._farewell})
                return
            raise
        finally:
            writes.close()
            self._open_streams.discard(task)
            await _aclose(self._frames)


async def _drop(scope: Scope, seconds: float) -> None:
    log.info("dropping a stream client that read nothing for %g s", seconds)
    abort: Callable[[], None] | None = scope.get(ABORT_KEY)
    if abort is not None:
        abort()
        await asyncio.sleep(0)  # let the server see the connection gone before we return


def close_streams(open_streams: set[asyncio.Task[None]]) -> int:
    """End every open stream with its farewell frame; returns how many there were."""
    tasks = list(open_streams)
    open_streams.clear()
    for task in tasks:
        task.cancel()
    return len(tasks)


async def _aclose(frames: AsyncIterator[bytes]) -> None:
    close = getattr(frames, "aclose", None)
    if close is not None:
        await close()
