"""The limits on one fal call, and timeouts that say which limit expired: `FalClock`, one
timer per request on the hot paths (base/watchdog.py), and `deadline`, an asyncio timeout."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType

from ..base.watchdog import Watchdog
from .errors import FalTimeout
from .sse import MAX_EVENT_BYTES


@dataclass(frozen=True)
class Timeouts:
    connect: float
    first_event: float
    idle: float
    total: float
    keepalive: float
    retry_budget: float
    max_event_bytes: int = MAX_EVENT_BYTES  # a stream's longest line or event


class deadline:  # lower case: used like asyncio.timeout()
    """A timeout that raises FalTimeout naming which limit expired: `seconds` from now, or
    the request's `total_deadline` (`total_seconds` after it began) if that comes first.

    A class rather than an @asynccontextmanager: it runs several times per request.
    """

    __slots__ = ("_at", "_own", "_seconds", "_timeout", "_total", "_total_seconds", "_which")

    def __init__(
        self, seconds: float, which: str, total_deadline: float | None, total_seconds: float = 0.0
    ) -> None:
        self._seconds = seconds
        self._own = asyncio.get_running_loop().time() + seconds
        self._at = self._own if total_deadline is None else min(self._own, total_deadline)
        self._total = total_deadline
        self._which = which
        self._total_seconds = total_seconds
        self._timeout = asyncio.timeout_at(self._at)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._timeout.__aexit__(kind, exc, tb)
        except TimeoutError:
            if self._total is not None and self._at == self._total < self._own:
                raise FalTimeout("total", self._total_seconds) from None
            raise FalTimeout(self._which, self._seconds) from None


async def shielded(coro: Awaitable[None]) -> None:
    """Run cleanup to the end even if the caller is being cancelled."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


class FalClock(Watchdog):
    """One fal request's deadlines on one timer: its total, and the limit of the phase it is
    in (first_event, idle). `limit()` starts a phase; a TimeoutError out of a block becomes
    `timeout()`, the FalTimeout naming the limit that passed.

        try:
            with clock.limit(timeouts.first_event, "first_event"):
                reply = await http.send(...)
        except TimeoutError:
            raise clock.timeout() from None
    """

    __slots__ = ("_own", "_seconds", "_total", "_total_seconds", "_which")

    def __init__(self, total_deadline: float, total_seconds: float) -> None:
        super().__init__(total_deadline)
        self._total = total_deadline
        self._total_seconds = total_seconds
        self._own = math.inf  # the phase's own deadline
        self._which = "total"
        self._seconds = total_seconds

    @property
    def total_deadline(self) -> float:
        return self._total

    def limit(self, seconds: float | None, which: str) -> FalClock:
        """From now, `seconds` (None: only the total) named `which`; returns the clock for a
        `with` block. Inside a block it moves the running deadline."""
        self._own = math.inf if seconds is None else self._loop.time() + seconds
        self._which, self._seconds = which, seconds if seconds is not None else 0.0
        self.move(self._own if self._own < self._total else self._total)
        return self

    def timeout(self) -> FalTimeout:
        if self._total <= self._own:
            return FalTimeout("total", self._total_seconds)
        return FalTimeout(self._which, self._seconds)
