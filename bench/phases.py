"""The measurements, one function per phase; each returns JSON-ready figures."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from typing import Any

import aiohttp

from . import load, procinfo, wire
from .plan import CASES, CHUNKY, FAST, MODES, Case, Plan, Upstream
from .processes import Proxy, Simulator
from .stats import Summary

UPSTREAM_CLOSE_TIMEOUT_S = 15.0
CORES = os.cpu_count() or 1
KINDS: dict[str, tuple[wire.Kind, wire.Kind]] = {
    "non_stream": (wire.direct_complete, wire.proxy_complete),
    "stream": (wire.direct_stream, wire.proxy_stream),
}


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of each process, and of the whole machine, over some wall-clock time."""

    wall: float = 0.0
    proxy: float = 0.0
    sim: float = 0.0
    harness: float = 0.0
    machine: float = 0.0

    def __add__(self, o: Cpu) -> Cpu:
        return Cpu(*(a + b for a, b in zip(astuple(self), astuple(o), strict=True)))

    def __sub__(self, o: Cpu) -> Cpu:
        return Cpu(*(a - b for a, b in zip(astuple(self), astuple(o), strict=True)))

    def box_pct(self) -> float:
        """How busy our three processes kept the machine, as a share of all its cores."""
        busy = self.proxy + self.sim + self.harness
        return 100 * busy / (self.wall * CORES) if self.wall else float("nan")

    def foreign_cores(self) -> float:
        """Cores used by anything else: other people's work on a shared box is noise."""
        ours = self.proxy + self.sim + self.harness
        return max(0.0, self.machine - ours) / self.wall if self.wall else float("nan")


def sample_cpu(proxy: Proxy | None, *sims: Simulator) -> Cpu:
    own = os.times()
    return Cpu(
        time.perf_counter(),
        proxy.cpu_seconds() if proxy is not None else 0.0,
        sum(sim.child_cpu() for sim in sims),
        own.user + own.system,
        procinfo.machine_busy_seconds(),
    )


@dataclass
class Bench:
    plan: Plan
    session: aiohttp.ClientSession
    sim: Simulator
    proxy: Proxy
    questions: wire.Questions
    errors: load.Errors = field(default_factory=load.Errors)

    @property
    def ep(self) -> wire.Endpoints:
        return wire.Endpoints(self.proxy.url, self.sim.run_url, self.sim.queue_url)

    def cpu(self) -> Cpu:
        return sample_cpu(self.proxy, self.sim)

    async def upstream(self, u: Upstream) -> None:
        await load.patch_simulator(self.session, self.sim.base_url, **u.as_dict())

    def maker(self, u: Upstream) -> Callable[[], wire.Question]:
        return functools.partial(self.questions.next, u.events)

    def kinds(self, mode: str, u: Upstream) -> dict[str, wire.Kind]:
        direct, proxy = KINDS[mode]
        if mode == "stream":
            direct = wire.expecting_chunks(direct, u.events)
            proxy = wire.expecting_chunks(proxy, u.events)
        return {"direct": direct, "proxy": proxy}

    def record(self, outcomes: list[wire.Outcome]) -> int:
        before = self.errors.count
        self.errors.add(outcomes)
        return self.errors.count - before


def _sides(round_index: int) -> tuple[str, str]:
    return ("direct", "proxy") if round_index % 2 == 0 else ("proxy", "direct")


async def warm_up(b: Bench) -> None:
    """Connections, imports, caches and allocator arenas, before any figure is taken."""
    await b.upstream(FAST)
    for mode in MODES:
        kinds = b.kinds(mode, FAST)
        pair = await load.paired(
            b.session, b.ep, b.maker(FAST), kinds["direct"], kinds["proxy"], b.plan.warmup_pairs
        )
        b.record(pair[0] + pair[1])
        for kind in kinds.values():
            res = await load.closed_loop(
                b.session, b.ep, kind, b.maker(FAST), 128, b.plan.warmup_loop_s, 0.0
            )
            b.errors.merge(res.errors)


async def settled_rss(b: Bench) -> int:
    await asyncio.sleep(b.plan.settle_s)
    return b.proxy.rss_kb()


async def latency(b: Bench) -> dict[str, Any]:
    """Concurrency 1, direct and proxy requests interleaved, 0 ms upstream."""
    await b.upstream(FAST)
    figures: dict[str, Any] = {"upstream": FAST.as_dict(), "pairs": b.plan.latency_pairs}
    for mode, name in (("non_stream", "non_stream"), ("stream", "stream_ttfc")):
        kinds = b.kinds(mode, FAST)
        before = b.cpu()
        direct, proxy = await load.paired(
            b.session, b.ep, b.maker(FAST), kinds["direct"], kinds["proxy"], b.plan.latency_pairs
        )
        used = b.cpu() - before  # the proxy only works during its own requests
        errors = b.record(direct + proxy)
        measure = _duration if mode == "non_stream" else _first_content
        d, p = Summary.of_seconds(measure(direct)), Summary.of_seconds(measure(proxy))
        figures[name] = {
            "direct": d.as_dict(),
            "proxy": p.as_dict(),
            "added": p.minus(d).as_dict(),
            "errors": errors,
            "proxy_cpu_ms_per_request": 1000 * used.proxy / max(1, len(proxy)),
        }
    return figures


def _duration(outcomes: list[wire.Outcome]) -> list[float]:
    return [o.duration for o in outcomes if o.ok]


def _first_content(outcomes: list[wire.Outcome]) -> list[float]:
    return [t for o in outcomes if o.ok and (t := o.first_content) is not None]


async def throughput(b: Bench) -> dict[str, Any]:
    cases = [c for c in CASES if b.plan.runs_case(c.name, b.sim.upstream)]
    return {
        case.name: {mode: await throughput_case(b, case, mode) for mode in MODES} for case in cases
    }


async def throughput_case(b: Bench, case: Case, mode: str) -> dict[str, Any]:
    await b.upstream(case.upstream)
    kinds = b.kinds(mode, case.upstream)
    runs: dict[str, list[load.LoopResult]] = {"direct": [], "proxy": []}
    cpu = {"direct": Cpu(), "proxy": Cpu()}
    for r in range(b.plan.rounds):
        for side in _sides(r):
            before = b.cpu()
            res = await load.closed_loop(
                b.session,
                b.ep,
                kinds[side],
                b.maker(case.upstream),
                case.concurrency,
                b.plan.loop_s,
                b.plan.loop_warmup_s,
                spread_s=_nominal_s(case.upstream, mode),
            )
            cpu[side] = cpu[side] + (b.cpu() - before)
            runs[side].append(res)
    return _loop_figures(b, case, runs, cpu)


def _nominal_s(u: Upstream, mode: str) -> float:
    """How long one request takes upstream: clients start this spread out, as independent
    clients would, instead of all at once and then in lockstep with the fixed latency."""
    events_s = u.events * u.interval_ms if mode == "stream" else 0.0
    return (u.latency_ms + events_s) / 1000


def _loop_figures(
    b: Bench, case: Case, runs: dict[str, list[load.LoopResult]], cpu: dict[str, Cpu]
) -> dict[str, Any]:
    rps = {s: sum(r.in_window for r in rs) / sum(r.window_s for r in rs) for s, rs in runs.items()}
    errors = {s: load.Errors() for s in runs}
    for side, results in runs.items():
        for res in results:
            errors[side].merge(res.errors)
        b.errors.merge(errors[side])
    proxy_requests = sum(r.total for r in runs["proxy"])
    p = cpu["proxy"]
    return {
        "concurrency": case.concurrency,
        "upstream": case.upstream.as_dict(),
        "workers": b.proxy.workers,
        "direct_rps": rps["direct"],
        "proxy_rps": rps["proxy"],
        "ratio": rps["proxy"] / rps["direct"] if rps["direct"] else float("nan"),
        "errors": errors["direct"].count + errors["proxy"].count,
        "errors_proxy": errors["proxy"].count,
        "errors_direct": errors["direct"].count,
        "error_samples": errors["proxy"].samples + errors["direct"].samples,
        "proxy_cpu_ms_per_request": 1000 * p.proxy / max(1, proxy_requests),
        "proxy_cpu_cores": p.proxy / p.wall,
        "simulator_cpu_cores": {s: c.sim / c.wall for s, c in cpu.items()},
        "harness_cpu_cores": {s: c.harness / c.wall for s, c in cpu.items()},
        "box_cpu_pct": {s: c.box_pct() for s, c in cpu.items()},
        "foreign_cpu_cores": {s: c.foreign_cores() for s, c in cpu.items()},
    }


async def inter_chunk(b: Bench) -> dict[str, Any]:
    """Gaps between consecutive content pieces of many concurrent streams."""
    await b.upstream(CHUNKY)
    kinds = b.kinds("stream", CHUNKY)
    outcomes: dict[str, list[wire.Outcome]] = {"direct": [], "proxy": []}
    cpu = {"direct": Cpu(), "proxy": Cpu()}
    spread = CHUNKY.interval_ms / 1000
    for side in _sides(0):  # unmeasured: the first round pays for new connections
        b.record(
            await load.stream_round(
                b.session, b.ep, kinds[side], b.maker(CHUNKY), b.plan.chunk_streams, spread
            )
        )
    for r in range(b.plan.chunk_rounds):
        for side in _sides(r):
            before = b.cpu()
            outcomes[side] += await load.stream_round(
                b.session, b.ep, kinds[side], b.maker(CHUNKY), b.plan.chunk_streams, spread
            )
            cpu[side] = cpu[side] + (b.cpu() - before)
    errors = b.record(outcomes["direct"] + outcomes["proxy"])
    d = Summary.of_seconds(load.gaps(outcomes["direct"]))
    p = Summary.of_seconds(load.gaps(outcomes["proxy"]))
    chunks = sum(len(o.content_times) for o in outcomes["proxy"] if o.ok)
    return {
        "streams": b.plan.chunk_streams,
        "rounds": b.plan.chunk_rounds,
        "upstream": CHUNKY.as_dict(),
        "direct_gap": d.as_dict(),
        "proxy_gap": p.as_dict(),
        "added_p50_ms": p.p50 - d.p50,
        "added_p99_ms": p.p99 - d.p99,
        "errors": errors,
        "proxy_chunks": chunks,
        "proxy_cpu_us_per_chunk": 1e6 * cpu["proxy"].proxy / max(1, chunks),
        "box_cpu_pct": {s: c.box_pct() for s, c in cpu.items()},
    }


async def idle_streams(b: Bench, rss_idle_kb: int) -> dict[str, Any]:
    """Many open streams whose upstream is silent: the proxy's memory per stream, whether
    it closes its fal connections once the clients leave, and whether a second identical
    burst grows memory again (a leak) or reuses what the first one left (a high-water mark)."""
    await b.upstream(FAST)
    first = await _idle_burst(b)
    rss_after_first = await settled_rss(b)
    second = await _idle_burst(b)
    rss_after_second = await settled_rss(b)
    return {
        "streams": b.plan.idle_streams,
        "opened": first["opened"],
        "upstream_open": first["upstream_open"],
        "rss_idle_kb": rss_idle_kb,
        "rss_open_kb": first["rss_open_kb"],
        "per_open_stream_kb": (first["rss_open_kb"] - rss_idle_kb) / max(1, first["opened"]),
        "upstream_closed_after_s": first["upstream_closed_after_s"],
        "rss_after_first_burst_kb": rss_after_first,
        "second_burst": second,
        "rss_after_second_burst_kb": rss_after_second,
        "second_burst_growth_kb": rss_after_second - rss_after_first,
    }


async def _idle_burst(b: Bench) -> dict[str, Any]:
    count = b.plan.idle_streams
    streams = load.IdleStreams(b.session, b.ep, b.questions)
    try:
        opened = await streams.open(count, b.plan.idle_burst)
        await asyncio.sleep(b.plan.settle_s)
        upstream_open = await load.simulator_open_streams(b.session, b.sim.base_url)
        rss_open = b.proxy.rss_kb()
    finally:
        await streams.close()
    closed_after = await _upstream_closed(b)
    b.errors.merge(streams.errors)
    for problem in _idle_problems(count, opened, upstream_open, closed_after):
        b.record([wire.Outcome(0.0, error=problem)])
    return {
        "opened": opened,
        "upstream_open": upstream_open,
        "rss_open_kb": rss_open,
        "upstream_closed_after_s": closed_after,
    }


def _idle_problems(count: int, opened: int, upstream: int, closed: float | None) -> list[str]:
    problems = []
    if opened != count or upstream != count:
        problems.append(f"{count} idle streams: {opened} opened, {upstream} open upstream")
    if closed is None:
        problems.append("the proxy kept fal streams open after its clients left")
    return problems


async def _upstream_closed(b: Bench) -> float | None:
    """Seconds until the simulator has no open stream left (None: not within the limit)."""
    start = time.perf_counter()
    while time.perf_counter() - start < UPSTREAM_CLOSE_TIMEOUT_S:
        if await load.simulator_open_streams(b.session, b.sim.base_url) == 0:
            return time.perf_counter() - start
        await asyncio.sleep(0.05)
    return None
