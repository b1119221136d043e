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
from .timeouts import FalClock, Timeouts
from .transport import StreamingResponse
from .wire import billable_units


class TimedStream:
    """An open upstream stream. `close()` drops the connection (fal then cancels the work)
    and frees the key; it is idempotent.

    Its deadlines share one lazily re-armed timer, the `FalClock` that also bounded the
    stream's opening: a read moves the deadline (an attribute store), it sets no timer of
    its own (an `asyncio.timeout_at` per read was ~7 % of a chunk's CPU)."""

    __slots__ = (
        "_clock", "_closed", "_event_deadline", "_hard", "_keepalive", "_lease", "_loop",
        "_response", "_timeouts", "_total_deadline", "_which", "billable_units", "request_id",
    )  # fmt: skip

    def __init__(
        self,
        response: StreamingResponse,
        lease: KeyLease,
        *,
        timeouts: Timeouts,
        clock: FalClock,
    ) -> None:
        self._response = response
        self._lease = lease
        self._timeouts = timeouts
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._keepalive = timeouts.keepalive
        self._total_deadline = clock.total_deadline
        # The first event's deadline, then the idle one; `_hard` is the sooner of it and the
        # total deadline.
        self._event_deadline = self._loop.time() + timeouts.first_event
        self._hard = min(self._event_deadline, self._total_deadline)
        self._which = "first_event"
        self._closed = False
        self.request_id = response.headers.get("x-fal-request-id")
        # Known only if fal sends it with the stream's headers (docs/fal-protocol.md §14.2).
        self.billable_units = billable_units(response.headers)

    async def _read(self) -> bytes | None:
        """The next body bytes (b"" at the end), or None once a keep-alive interval has
        passed without any; FalTimeout when a deadline expires."""
        clock = self._clock
        soft = self._loop.time() + self._keepalive
        clock.deadline = soft if soft < self._hard else self._hard
        try:
            with clock:
                return await self._response.read_chunk()
        except TimeoutError:
            now = self._loop.time()
            if now >= self._total_deadline:
                raise FalTimeout("total", self._timeouts.total) from None
            if now >= self._event_deadline:
                first = self._which == "first_event"
                seconds = self._timeouts.first_event if first else self._timeouts.idle
                raise FalTimeout(self._which, seconds) from None
            return None

    def _progressed(self) -> None:
        """The upstream showed life: the idle timeout starts again."""
        self._event_deadline = self._loop.time() + self._timeouts.idle
        self._hard = min(self._event_deadline, self._total_deadline)
        self._which = "idle"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._clock.close()
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
