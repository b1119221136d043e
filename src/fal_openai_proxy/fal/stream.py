"""One `/stream` call's events, with first-event, idle and total timeouts."""

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


class FalStream:
    """`events()` yields each event as a dict, and `None` each keep-alive interval without one.
    `close()` drops the connection (fal then cancels the work) and frees the key."""

    __slots__ = (
        "_closed", "_first_deadline", "_lease", "_response", "_timeouts", "_total_deadline",
        "request_id",
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
        self._first_deadline = first_deadline
        self._total_deadline = total_deadline
        self._closed = False
        self.request_id = response.headers.get("x-fal-request-id")

    async def events(self) -> AsyncIterator[dict[str, Any] | None]:
        loop = asyncio.get_running_loop()
        decoder = SSEDecoder()
        event_deadline = self._first_deadline
        which = "first_event"
        while True:
            keepalive_at = loop.time() + self._timeouts.keepalive
            deadline = min(event_deadline, self._total_deadline, keepalive_at)
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await self._response.read_chunk()
            except TimeoutError:
                now = loop.time()
                if now >= self._total_deadline:
                    raise FalTimeout("total", self._timeouts.total) from None
                if now >= event_deadline:
                    seconds = (
                        self._timeouts.first_event
                        if which == "first_event"
                        else self._timeouts.idle
                    )
                    raise FalTimeout(which, seconds) from None
                yield None
                continue
            events = decoder.feed(chunk) if chunk else decoder.close()
            for data in events:
                yield loads_object(data)
            if events:
                event_deadline = loop.time() + self._timeouts.idle
                which = "idle"
            if not chunk:
                return

    def close(self) -> None:
        """Close the connection (fal cancels the work) and free the key. Idempotent."""
        if not self._closed:
            self._closed = True
            self._response.close()
            self._lease.release()
