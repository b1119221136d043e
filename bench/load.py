"""Load shapes: paired requests at concurrency 1, closed loops, stream rounds, idle streams."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from .wire import Endpoints, Kind, Outcome, Question, Questions, chat_body

MAX_ERROR_SAMPLES = 5


@dataclass
class Errors:
    """How many requests failed, and a few of the reasons."""

    count: int = 0
    samples: list[str] = field(default_factory=list)

    def add(self, outcomes: list[Outcome]) -> None:
        for out in outcomes:
            if out.error is not None:
                self.count += 1
                if len(self.samples) < MAX_ERROR_SAMPLES:
                    self.samples.append(out.error)

    def merge(self, other: Errors) -> None:
        self.count += other.count
        room = MAX_ERROR_SAMPLES - len(self.samples)
        self.samples.extend(other.samples[: max(0, room)])


async def patch_simulator(session: aiohttp.ClientSession, base_url: str, **changes: Any) -> None:
    async with session.patch(f"{base_url}/_sim/config", data=orjson.dumps(changes)) as r:
        if r.status != 200:
            raise RuntimeError(f"simulator refused {changes}: HTTP {r.status}")


async def simulator_open_streams(session: aiohttp.ClientSession, base_url: str) -> int:
    async with session.get(f"{base_url}/_sim/stats") as r:
        return int((await r.json())["open_streams"])


async def paired(
    session: aiohttp.ClientSession,
    ep: Endpoints,
    make: Callable[[], Question],
    direct: Kind,
    proxy: Kind,
    pairs: int,
) -> tuple[list[Outcome], list[Outcome]]:
    """One direct and one proxy request per pair, one at a time, alternating which goes first
    so that drift and ordering effects hit both sides alike."""
    direct_out: list[Outcome] = []
    proxy_out: list[Outcome] = []
    for i in range(pairs):
        if i % 2 == 0:
            direct_out.append(await direct(session, ep, make()))
            proxy_out.append(await proxy(session, ep, make()))
        else:
            proxy_out.append(await proxy(session, ep, make()))
            direct_out.append(await direct(session, ep, make()))
    return direct_out, proxy_out


@dataclass
class LoopResult:
    """A closed loop: ``concurrency`` clients, each sending its next request when one ends."""

    concurrency: int
    window_s: float
    in_window: int  # requests that ended inside the measured window
    total: int  # every request sent, including warm-up and the tail
    content_chunks: int
    errors: Errors

    @property
    def rps(self) -> float:
        return self.in_window / self.window_s


async def closed_loop(
    session: aiohttp.ClientSession,
    ep: Endpoints,
    kind: Kind,
    make: Callable[[], Question],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    spread_s: float = 0.0,
) -> LoopResult:
    """Clients start ``spread_s`` apart in all, so that they do not march in lockstep."""
    start = time.perf_counter()
    window_start, end = start + warmup_s, start + duration_s
    outcomes: list[Outcome] = []

    async def client(index: int) -> None:
        await asyncio.sleep(spread_s * index / concurrency)
        while time.perf_counter() < end:
            outcomes.append(await kind(session, ep, make()))

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    errors = Errors()
    errors.add(outcomes)
    return LoopResult(
        concurrency=concurrency,
        window_s=duration_s - warmup_s,
        in_window=sum(1 for o in outcomes if o.ok and window_start <= o.finished <= end),
        total=len(outcomes),
        content_chunks=sum(len(o.content_times) for o in outcomes),
        errors=errors,
    )


async def stream_round(
    session: aiohttp.ClientSession,
    ep: Endpoints,
    kind: Kind,
    make: Callable[[], Question],
    streams: int,
    spread_s: float,
) -> list[Outcome]:
    """``streams`` concurrent streams, their starts spread evenly over ``spread_s`` so that
    their events do not all fall due at the same instant."""

    async def one(index: int) -> Outcome:
        await asyncio.sleep(spread_s * index / streams)
        return await kind(session, ep, make())

    return list(await asyncio.gather(*(one(i) for i in range(streams))))


def gaps(outcomes: list[Outcome]) -> list[float]:
    """Seconds between consecutive content arrivals within each successful stream."""
    found: list[float] = []
    for out in outcomes:
        if out.ok:
            times = out.content_times
            found.extend(b - a for a, b in itertools.pairwise(times))
    return found


class IdleStreams:
    """Streams through the proxy whose upstream sends headers and then nothing (``hang``)."""

    def __init__(self, session: aiohttp.ClientSession, ep: Endpoints, questions: Questions):
        self._session = session
        self._ep = ep
        self._questions = questions
        self._release = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.errors = Errors()

    async def open(self, count: int, burst: int) -> int:
        """Open ``count`` streams, at most ``burst`` connecting at once; return how many
        are open (headers and the role chunk received)."""
        gate = asyncio.Semaphore(burst)
        opened: list[asyncio.Future[str | None]] = []
        loop = asyncio.get_running_loop()
        for _ in range(count):
            fut: asyncio.Future[str | None] = loop.create_future()
            opened.append(fut)
            self._tasks.append(asyncio.create_task(self._hold(gate, fut)))
        results = await asyncio.gather(*opened)
        failures = [Outcome(0.0, error=r) for r in results if r is not None]
        self.errors.add(failures)
        return count - len(failures)

    async def close(self) -> None:
        self._release.set()
        await asyncio.gather(*self._tasks)

    async def _hold(self, gate: asyncio.Semaphore, opened: asyncio.Future[str | None]) -> None:
        q = self._questions.next(directive={"hang": True})
        url = f"{self._ep.proxy}/v1/chat/completions"
        headers = {"Content-Type": "application/json"}
        try:
            async with gate:
                resp = await self._session.post(
                    url, data=chat_body(q, stream=True), headers=headers
                )
                first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 30)
            if resp.status != 200 or not first.startswith(b"data: "):
                opened.set_result(f"idle stream: HTTP {resp.status} {first[:80]!r}")
            else:
                opened.set_result(None)
                await self._release.wait()
            resp.close()  # the client leaves: the proxy must close its fal stream
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            with contextlib.suppress(asyncio.InvalidStateError):
                opened.set_result(f"idle stream: {type(exc).__name__}: {exc}"[:200])
