"""Small raw-ASGI helpers: responses, body reading, disconnect watching, abrupt drops."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class SimulatedDrop(Exception):
    """Raised after the response started: the server then closes the connection mid-body."""


class _HideSimulatedDrops(logging.Filter):
    """Keep uvicorn from logging our intentional drops as application crashes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedDrop)


_DROP_FILTER = _HideSimulatedDrops()


def install_drop_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _DROP_FILTER not in logger.filters:
        logger.addFilter(_DROP_FILTER)


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_bytes(
    send: Send, status: int, body: bytes, headers: Headers, content_type: tuple[bytes, bytes]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [content_type, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: Any, headers: Headers) -> None:
    await send_bytes(send, status, orjson.dumps(payload), headers, JSON_TYPE)


class DisconnectWatch:
    """Watches ``receive()`` for ``http.disconnect`` while the handler does other things.

    Must be started only after the request body has been fully read. ``stop()`` it before
    the response completes: afterwards uvicorn reports a (spurious) disconnect.
    """

    __slots__ = ("_task", "gone")

    def __init__(self, receive: Receive) -> None:
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self.gone.done():
                    self.gone.set_result(None)
                return

    @property
    def disconnected(self) -> bool:
        return self.gone.done()

    def stop(self) -> None:
        self._task.cancel()

    async def pause(self, seconds: float, *others: asyncio.Future[None]) -> bool:
        """Sleep up to ``seconds`` (``inf`` = until woken); return True if the client left.

        Any future in ``others`` ends the pause early too (e.g. a job being cancelled).
        """
        if self.gone.done():
            return True
        if seconds <= 0:
            return False
        await wait_any(seconds, self.gone, *others)
        return self.gone.done()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def wait_any(seconds: float, *futures: asyncio.Future[None]) -> None:
    """Wait until ``seconds`` elapse or any future completes (no task is created)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    timer = None if math.isinf(seconds) else loop.call_later(seconds, _wake, waiter)

    def on_done(_: asyncio.Future[None]) -> None:
        _wake(waiter)

    for fut in futures:
        fut.add_done_callback(on_done)
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()
        for fut in futures:
            fut.remove_done_callback(on_done)
