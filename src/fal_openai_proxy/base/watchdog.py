"""One timer for all of a task's deadlines, re-armed lazily.

`asyncio.timeout()` arms a timer when its block starts and cancels it when the block ends:
on uvloop a `call_at` and its `cancel` cost several microseconds (a libuv timer each), and a
proxy that guarded every upstream read that way spent ~7 % of a stream chunk's CPU on it
(docs/benchmarks.md). A `Watchdog` keeps one timer for a task's life instead. Moving the
deadline is an attribute store; when the timer fires early (the deadline moved later
meanwhile) it re-arms itself once for the new deadline; only a deadline moved *earlier* than
the armed time costs a new timer. Like `asyncio.timeout()`, expiry inside a `with` block
cancels the task and the block raises TimeoutError; expiry outside any block does nothing.

    watchdog = Watchdog(loop.time() + 30)
    try:
        with watchdog:            # a plain `with`: no coroutine per use
            data = await read()
        watchdog.move(loop.time() + 5)
        with watchdog:
            more = await read()
    finally:
        watchdog.close()          # always: a pending timer holds the task
"""

from __future__ import annotations

import asyncio
import math
import types
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType, TracebackType
from typing import Any, TypeVar, cast

T = TypeVar("T")


class Watchdog:
    """Cancels its task when `deadline` (the loop's clock) passes inside a `with` block.
    Not re-entrant: a block does not nest in another of the same watchdog. Bound to the task
    that first enters a block."""

    __slots__ = (
        "_active", "_armed_at", "_base", "_fired", "_handle", "_loop", "_task", "deadline",
    )  # fmt: skip

    def __init__(self, deadline: float = math.inf) -> None:
        self._loop = asyncio.get_running_loop()
        self.deadline = deadline
        self._task: asyncio.Task[object] | None = None
        self._base = 0  # the task's cancel requests when first seen: not ours
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self._active = False  # inside a block
        self._fired = False  # our cancel of the task is pending

    def move(self, deadline: float) -> None:
        """A new deadline; re-arms the timer only if it must fire sooner than armed."""
        self.deadline = deadline
        if self._active and deadline < self._armed_at:
            self._arm()

    def __enter__(self) -> Watchdog:
        if self._task is None:
            task = asyncio.current_task(self._loop)
            if task is None:
                raise RuntimeError("a Watchdog guards a task")
            self._task, self._base = task, task.cancelling()
        self._active = True
        if self.deadline < self._armed_at:
            self._arm()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._active = False
        if self._fired:
            self._fired = False
            assert self._task is not None
            # Ours, unless someone else asked to cancel the task meanwhile: theirs wins.
            if self._task.uncancel() <= self._base and kind is asyncio.CancelledError:
                raise TimeoutError from None

    async def run(self, awaitable: Awaitable[T], seconds: float | None = None) -> T:
        """`await awaitable` in a block, but a coroutine that ends at its first step (the
        request body that has already arrived, a write the socket takes at once) ends
        without the timer ever being armed. `seconds`: the deadline is that long after the
        awaitable first waits."""
        if type(awaitable) is not CoroutineType:
            if seconds is not None:
                self.deadline = self._loop.time() + seconds
            with self:
                return await awaitable
        coro = cast("Coroutine[Any, Any, T]", awaitable)
        try:
            suspended_on = coro.send(None)
        except StopIteration as done:
            return cast(T, done.value)
        except BaseException:
            coro.close()
            raise
        if seconds is not None:
            self.deadline = self._loop.time() + seconds
        with self:
            return await _resumed(coro, suspended_on)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_at = math.inf

    @property
    def expired(self) -> bool:
        return self._loop.time() >= self.deadline

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if math.isinf(self.deadline):
            self._handle, self._armed_at = None, math.inf
            return
        self._armed_at = self.deadline
        self._handle = self._loop.call_at(self.deadline, self._check)

    def _check(self) -> None:
        self._handle, self._armed_at = None, math.inf
        if not self._active:
            return  # no block to stop: the next block arms the timer again
        if self._loop.time() < self.deadline:
            self._arm()  # the deadline moved on since the timer was set
            return
        assert self._task is not None
        self._fired = True
        self._task.cancel()


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, T], suspended_on: Any) -> Generator[Any, Any, T]:
    """The rest of `coro`, which suspended on `suspended_on` (a future) at its first step: that
    future goes to the task as if `coro` were awaited, and then `coro` goes on as `yield from`
    would drive it (PEP 380)."""
    waiting_on = suspended_on
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:  # a cancellation, or the generator's close()
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as done:
                return cast(T, done.value)
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as done:
                return cast(T, done.value)
