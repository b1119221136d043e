"""The one-timer watchdog (base/watchdog.py) and the fal streams and calls built on it: a
deadline that passes inside a block is a TimeoutError (a FalTimeout naming the limit), and a
stream's reads set no timer of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest

from fal_openai_proxy.base.metrics import Metrics
from fal_openai_proxy.base.watchdog import Watchdog
from fal_openai_proxy.fal.client import FalClient
from fal_openai_proxy.fal.errors import FalTimeout
from fal_openai_proxy.fal.timeouts import FalClock, Timeouts

from ..support.fake_transport import FakeResponse, MockTransport


async def test_a_deadline_passing_inside_a_block_is_a_timeout() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(loop.time() + 0.01)
    task = asyncio.current_task()
    assert task is not None
    try:
        with pytest.raises(TimeoutError), watchdog:
            await asyncio.Event().wait()
        assert task.cancelling() == 0  # the cancel was ours, and taken back
    finally:
        watchdog.close()


async def test_a_deadline_passing_outside_any_block_cancels_nothing() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(loop.time() + 0.01)
    try:
        with watchdog:
            pass  # arms the timer
        await asyncio.sleep(0.05)  # it fires here, outside the block: nothing happens
        with pytest.raises(TimeoutError), watchdog:  # and the next block still expires
            await asyncio.Event().wait()
    finally:
        watchdog.close()


async def test_a_deadline_moved_later_inside_a_block_is_kept() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(loop.time() + 0.01)
    done = asyncio.Event()
    loop.call_later(0.05, done.set)
    try:
        with watchdog:
            watchdog.move(loop.time() + 30)  # the armed timer fires early and re-arms
            await done.wait()
    finally:
        watchdog.close()


async def test_a_deadline_moved_sooner_inside_a_block_fires_then() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(loop.time() + 30)

    async def moved_sooner() -> None:
        with watchdog:
            watchdog.move(loop.time() + 0.01)
            await asyncio.Event().wait()

    try:
        with pytest.raises(TimeoutError):
            await moved_sooner()
    finally:
        watchdog.close()


async def test_another_cancel_wins_over_the_deadline() -> None:
    loop = asyncio.get_running_loop()

    async def guarded() -> None:
        watchdog = Watchdog(loop.time() + 0.01)
        try:
            with watchdog:
                await asyncio.sleep(0.05)  # the deadline passes first...
        finally:
            watchdog.close()

    task = asyncio.ensure_future(guarded())
    await asyncio.sleep(0)

    def cancel_both() -> None:
        task.cancel()  # ...and someone else cancels the task as well, before it resumes

    loop.call_later(0.01, cancel_both)
    with pytest.raises(asyncio.CancelledError):
        await task


TIMEOUTS = Timeouts(connect=1, first_event=5, idle=5, total=30, keepalive=10, retry_budget=0)


def client(transport: MockTransport, timeouts: Timeouts = TIMEOUTS) -> FalClient:
    return FalClient(
        run_url="https://run.test",
        queue_url="https://queue.test",
        http=transport,
        pool=None,
        timeouts=timeouts,
        metrics=Metrics(),
    )


@contextmanager
def counted_timers() -> Iterator[list[float]]:
    """Every `call_at` a Watchdog makes, meanwhile."""
    armed: list[float] = []
    original = Watchdog._arm

    def arm(self: Watchdog) -> None:
        armed.append(self.deadline)
        original(self)

    Watchdog._arm = arm  # type: ignore[method-assign]
    try:
        yield armed
    finally:
        Watchdog._arm = original  # type: ignore[method-assign]


class SlowResponse(FakeResponse):
    """A stream whose chunks each take a loop iteration, as a socket's do."""

    async def read_chunk(self) -> bytes:
        await asyncio.sleep(0)
        return await super().read_chunk()


async def test_a_stream_of_many_events_sets_at_most_two_timers() -> None:
    events = [b"data: " + orjson.dumps({"output": "x" * i}) + b"\n\n" for i in range(1, 201)]
    response = SlowResponse(200, {"content-type": "text/event-stream"}, events)
    url = "https://run.test/fal-ai/any-llm/stream"
    transport = MockTransport.table({("POST", url): response})
    with counted_timers() as armed:
        stream = await client(transport).open_stream("fal-ai/any-llm", {}, "k")
        seen = [e async for e in stream.events()]
        stream.close()
    assert len(seen) == 200
    # At most one for the first event's deadline and one when the keep-alive interval began
    # (when it is the shorter); none per read.
    assert 1 <= len(armed) <= 2


async def test_a_silent_stream_yields_keepalives_then_times_out() -> None:
    timeouts = Timeouts(
        connect=1, first_event=0.2, idle=0.2, total=30, keepalive=0.05, retry_budget=0
    )

    class Silent(FakeResponse):
        async def read_chunk(self) -> bytes:
            await asyncio.Event().wait()
            return b""

    url = "https://run.test/fal-ai/any-llm/stream"
    response = Silent(200, {"content-type": "text/event-stream"}, [])
    stream = await client(MockTransport.table({("POST", url): response}), timeouts).open_stream(
        "fal-ai/any-llm", {}, "k"
    )
    seen: list[Any] = []

    async def read_all() -> None:
        async for event in stream.events():
            seen.append(event)

    with pytest.raises(FalTimeout) as caught:
        await read_all()
    stream.close()
    assert caught.value.which == "first_event"
    assert seen and all(event is None for event in seen)  # keep-alives before the timeout


async def test_the_queue_names_the_limit_that_passed() -> None:
    queue = "https://queue.test/fal-ai/any-llm"

    class Hanging(FakeResponse):
        async def read_body(self) -> bytes:
            await asyncio.Event().wait()
            return b""

    transport = MockTransport.table({("POST", queue): Hanging(200, {}, [])})
    timeouts = Timeouts(connect=1, first_event=0.02, idle=5, total=30, keepalive=10, retry_budget=0)
    with pytest.raises(FalTimeout) as caught:
        await client(transport, timeouts).run_queued("fal-ai/any-llm", {}, "k")
    assert caught.value.which == "first_event"


async def test_a_clock_names_the_total_when_it_comes_first() -> None:
    loop = asyncio.get_running_loop()
    clock = FalClock(loop.time() + 0.01, 0.01)
    try:
        with pytest.raises(TimeoutError), clock.limit(60, "idle"):
            await asyncio.Event().wait()
    finally:
        clock.close()
    assert clock.timeout().which == "total"


async def test_run_arms_no_timer_for_what_is_ready() -> None:
    loop = asyncio.get_running_loop()

    async def ready() -> str:
        return "body"

    watchdog = Watchdog(loop.time() + 30)
    with counted_timers() as armed:
        assert await watchdog.run(ready()) == "body"
    watchdog.close()
    assert armed == []


async def test_run_times_out_what_waits_and_returns_what_comes() -> None:
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[str] = loop.create_future()

    async def waiting() -> str:
        return await arrived

    watchdog = Watchdog(loop.time() + 30)
    loop.call_later(0.01, arrived.set_result, "late body")
    with counted_timers() as armed:
        assert await watchdog.run(waiting()) == "late body"
    assert len(armed) == 1
    watchdog.move(loop.time() + 0.01)
    with pytest.raises(TimeoutError):
        await watchdog.run(asyncio.Event().wait())
    watchdog.close()


async def test_run_counts_seconds_from_when_the_awaitable_first_waits() -> None:
    """A write that waits gets its whole allowance however long the stream has been open,
    and a timer at the old, later deadline does not let it wait longer."""
    loop = asyncio.get_running_loop()
    watchdog = Watchdog()
    try:
        gate: asyncio.Future[None] = loop.create_future()
        loop.call_later(0.05, gate.set_result, None)

        async def waits_a_little() -> None:
            await gate

        await watchdog.run(waits_a_little(), 30)  # under its allowance: no timeout
        started = loop.time()
        with pytest.raises(TimeoutError):
            await watchdog.run(asyncio.Event().wait(), 0.02)
        assert loop.time() - started < 10  # not held to the first call's later deadline
    finally:
        watchdog.close()


async def test_run_passes_a_cancellation_through() -> None:
    loop = asyncio.get_running_loop()
    cleaned: list[bool] = []

    async def waiting() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(True)

    async def guarded() -> None:
        watchdog = Watchdog(loop.time() + 30)
        try:
            await watchdog.run(waiting())
        finally:
            watchdog.close()

    task = asyncio.ensure_future(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]
