"""Upstream event streams with first-event, idle and total timeouts.

`TimedStream` holds what every stream shares (the response, the key lease, the deadlines);
`FalStream` reads a fal `/stream` call's events, and `openrouter.OpenRouterStream` the OpenAI
route's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from .decode import loads_object
from .errors import FalTimeout
from .keys import KeyLease
from .sse import SSEDecoder
from .timeouts import Timeouts
from .transport import StreamingResponse
from .wire import billable_units


class TimedStream:
    """An open upstream stream. `close()` drops the connection (fal then cancels the work)
    and frees the key; it is idempotent."""

    __slots__ = (
        "_closed", "_event_deadline", "_lease", "_response", "_timeouts", "_total_deadline",
        "_which", "billable_units", "request_id",
    )  # fmt: skip

    def __init__(
        self,
        response: StreamingResponse,
        lease: KeyLease,
        *,
        timeouts: Timeouts,
        first_deadline: float,
        total_deadline: float,
    ) -> None:
        self._response = response
        self._lease = lease
        self._timeouts = timeouts
        self._event_deadline = first_deadline  # the first event's, then the idle one
        self._which = "first_event"
        self._total_deadline = total_deadline
        self._closed = False
        self.request_id = response.headers.get("x-fal-request-id")
        # Known only if fal sends it with the stream's headers (docs/fal-protocol.md §14.2).
        self.billable_units = billable_units(response.headers)

    async def _read(self) -> bytes | None:
        """The next body bytes (b"" at the end), or None once a keep-alive interval has
        passed without any; FalTimeout when a deadline expires."""
        loop = asyncio.get_running_loop()
        keepalive_at = loop.time() + self._timeouts.keepalive
        try:
            async with asyncio.timeout_at(
                min(self._event_deadline, self._total_deadline, keepalive_at)
            ):
                return await self._response.read_chunk()
        except TimeoutError:
            now = loop.time()
            if now >= self._total_deadline:
                raise FalTimeout("total", self._timeouts.total) from None
            if now >= self._event_deadline:
                first = self._which == "first_event"
                seconds = self._timeouts.first_event if first else self._timeouts.idle
                raise FalTimeout(self._which, seconds) from None
            return None

    def _progressed(self) -> None:
        """The upstream showed life: the idle timeout starts again."""
        self._event_deadline = asyncio.get_running_loop().time() + self._timeouts.idle
        self._which = "idle"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._response.close()
            self._lease.release()


class FalStream(TimedStream):
    """fal's `/stream` events: `events()` yields each as a dict, and `None` each keep-alive
    interval without one. Only whole events reset the idle timeout."""

    __slots__ = ()

    async def events(self) -> AsyncIterator[dict[str, Any] | None]:
        decoder = SSEDecoder(self._timeouts.max_event_bytes)
        while True:
            chunk = await self._read()
            if chunk is None:
                yield None
                continue
            events = decoder.feed(chunk) if chunk else decoder.close()
            for data in events:
                yield loads_object(data)
            if events:
                self._progressed()
            if not chunk:
                return
