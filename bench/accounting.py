"""What accounts cost the request path (DATABASE_URL, docs/accounts.md), in one run: the same
load on proxies that differ only in their accounts, measured in turns, each proxy's CPU counted
whole (its background usage writer included).

- `off`: `DATABASE_URL=none`, the plain pipe;
- `default`: the default settings, a SQLite file, every request's usage written;
- `virtual_key`: the same with `ADMIN_KEY`, every request made with a virtual key (a key
  check in memory, and its spend charged).

The target: CPU per request with accounts on (`default`) at most 10 % above `off`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from . import load, procinfo, tls, wire
from .plan import FAST, FULL, QUICK, Plan
from .processes import HOST, Proxy, Simulator, start_proxy, start_simulator

REPO = Path(__file__).resolve().parent.parent

ADMIN_KEY = "bench-admin-key-3f9c1d2e7a"  # a throwaway secret of the harness's own proxies
CONFIGS: dict[str, dict[str, str]] = {
    "off": {"DATABASE_URL": "none"},
    "default": {},
    "virtual_key": {"ADMIN_KEY": ADMIN_KEY},
}
MODES = ("non_stream", "stream")
CONCURRENCY = 32
TARGET_RATIO = 1.10  # CPU per request, accounts on / off
GROSS_RATIO = 1.5  # --quick fails beyond this (a noisy shared box)
# After each segment, time for the background writer to write it (it runs every second), so
# that its CPU is counted with the requests that caused it.
WRITE_SETTLE_S = 1.5


async def measure(
    plan: Plan,
    session: aiohttp.ClientSession,
    sim: Simulator,
    workdir: Path,
    started: list[Any],
    questions: wire.Questions,
) -> dict[str, Any]:
    proxies: dict[str, Proxy] = {}
    headers: dict[str, dict[str, str]] = {}
    try:
        for name, overrides in CONFIGS.items():
            proxy = start_proxy(workdir, sim, 1, overrides, name=f"proxy-accounts-{name}")
            started.append(proxy.child)
            proxies[name] = proxy
            headers[name] = {"Content-Type": "application/json"}
            if name == "virtual_key":
                key = await _create_key(session, proxy.url)
                headers[name]["Authorization"] = f"Bearer {key}"
        await load.patch_simulator(session, sim.base_url, **FAST.as_dict())

        def make() -> wire.Question:
            return questions.next(FAST.events)

        cpu = {name: {m: 0.0 for m in MODES} for name in CONFIGS}
        done = {name: {m: 0 for m in MODES} for name in CONFIGS}
        # Each round: every setting in turn, back to back, for one mode; the ratios to `off`
        # are taken within a round, so that the box's drift between rounds cancels out.
        paired: dict[str, dict[str, list[float]]] = {n: {m: [] for m in MODES} for n in CONFIGS}
        errors = load.Errors()
        kinds = {"non_stream": wire.proxy_complete, "stream": wire.proxy_stream}
        for name, proxy in proxies.items():  # warm-up, not counted
            ep = _endpoints(proxy, sim, headers[name])
            for kind in kinds.values():
                res = await load.closed_loop(
                    session, ep, kind, make, CONCURRENCY, max(2.0, plan.warmup_loop_s), 0.0
                )
                errors.merge(res.errors)
        order = list(proxies)
        for r in range(max(2, plan.rounds * 2)):
            for mode, kind in kinds.items():
                per_request: dict[str, float] = {}
                for name in order[r % len(order) :] + order[: r % len(order)]:  # turns rotate
                    proxy, ep = proxies[name], _endpoints(proxies[name], sim, headers[name])
                    before = proxy.cpu_seconds()
                    res = await load.closed_loop(
                        session, ep, kind, make, CONCURRENCY, plan.loop_s, 0.0
                    )
                    await asyncio.sleep(WRITE_SETTLE_S)
                    used = proxy.cpu_seconds() - before
                    cpu[name][mode] += used
                    done[name][mode] += res.total
                    per_request[name] = used / max(1, res.total)
                    errors.merge(res.errors)
                for name in CONFIGS:
                    paired[name][mode].append(per_request[name] / per_request["off"])
        return _figures(cpu, done, paired, errors)
    finally:
        for proxy in proxies.values():
            proxy.child.stop()
            started.remove(proxy.child)


def _endpoints(proxy: Proxy, sim: Simulator, headers: dict[str, str]) -> wire.Endpoints:
    return wire.Endpoints(proxy.url, sim.run_url, sim.queue_url, headers)


async def _create_key(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(
        f"{url}/admin/keys",
        json={"name": "bench"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as response:
        body = await response.json()
        if response.status != 201:
            raise RuntimeError(f"cannot create a virtual key: {response.status} {body}")
        return str(body["key"])


def _figures(
    cpu: dict[str, dict[str, float]],
    done: dict[str, dict[str, int]],
    paired: dict[str, dict[str, list[float]]],
    errors: load.Errors,
) -> dict[str, Any]:
    per_request = {
        name: {m: 1000 * cpu[name][m] / max(1, done[name][m]) for m in cpu[name]} for name in cpu
    }
    ratios = {  # the median of the rounds' paired ratios
        name: {m: statistics.median(paired[name][m]) for m in MODES}
        for name in CONFIGS
        if name != "off"
    }
    spread = {
        name: {m: [min(paired[name][m]), max(paired[name][m])] for m in MODES} for name in ratios
    }
    return {
        "concurrency": CONCURRENCY,
        "upstream": FAST.as_dict(),
        "requests": done,
        "proxy_cpu_ms_per_request": per_request,
        "ratio_to_off": ratios,
        "ratio_to_off_range": spread,
        "rounds": len(paired["off"]["non_stream"]),
        "target_ratio": TARGET_RATIO,
        "met": all(v <= TARGET_RATIO for v in ratios["default"].values()) and not errors.count,
        "errors": {"count": errors.count, "samples": errors.samples},
    }


def gate(figures: dict[str, Any]) -> list[str]:
    """--quick: errors, or accounts grossly dearer than the target allows."""
    reasons = [f"accounts phase: {figures['errors']['count']} errors"] * bool(
        figures["errors"]["count"]
    )
    for mode, ratio in figures["ratio_to_off"]["default"].items():
        if ratio > GROSS_RATIO:
            reasons.append(f"accounts: CPU per {mode} request {ratio:.2f}x off (> {GROSS_RATIO}x)")
    return reasons


def console(figures: dict[str, Any]) -> str:
    lines = [
        "accounts: proxy CPU per request (ms), and the median of the rounds' ratios to "
        f"DATABASE_URL=none (their range), {figures['rounds']} rounds"
    ]
    for name, modes in figures["proxy_cpu_ms_per_request"].items():
        cells = []
        for mode, value in modes.items():
            ratio = figures["ratio_to_off"].get(name, {}).get(mode)
            low, high = figures["ratio_to_off_range"].get(name, {}).get(mode, (0, 0))
            extra = f" ({ratio:.3f}x, {low:.2f}-{high:.2f})" if ratio else ""
            cells.append(f"{mode} {value:.3f}{extra}")
        lines.append(f"  {name:<12} " + ", ".join(cells))
    verdict = "met" if figures["met"] else "MISSED"
    lines.append(f"  target: default <= {TARGET_RATIO:g}x off: {verdict}")
    return "\n".join(lines)


__all__ = ["console", "gate", "measure"]


async def _alone(plan: Plan, workdir: Path, started: list[Any]) -> dict[str, Any]:
    from .run import new_session  # the harness's own session (keep-alive, the CA)

    ca = tls.throwaway_ca(workdir, HOST)
    sim = start_simulator(workdir, FAST.latency_ms, FAST.interval_ms, FAST.events)
    started.append(sim.child)
    async with new_session(ca) as session:
        return await measure(plan, session, sim, workdir, started, wire.Questions("acc"))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.accounting [--quick]``: this phase alone (`make bench` runs it too)."""
    parser = argparse.ArgumentParser(prog="python -m bench.accounting", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=0, help="turns per proxy (default: plan)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = replace(plan, rounds=max(1, args.rounds // 2))
    started: list[Any] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-accounts-") as tmp,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            figures = runner.run(_alone(plan, Path(tmp), started))
    finally:
        for child in reversed(started):
            child.stop()
    figures["date"] = datetime.date.today().isoformat()
    figures["machine"] = procinfo.machine(REPO).as_dict()
    print(console(figures))
    out = REPO / "bench" / "results" / f"accounts-{figures['date']}.json"
    out.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {out}")
    return 0 if figures["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
