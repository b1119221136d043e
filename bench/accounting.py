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

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from . import load, wire
from .plan import FAST, Plan
from .processes import Proxy, Simulator, start_proxy

ADMIN_KEY = "bench-admin-key-3f9c1d2e7a"  # a throwaway secret of the harness's own proxies
CONFIGS: dict[str, dict[str, str]] = {
    "off": {"DATABASE_URL": "none"},
    "default": {},
    "virtual_key": {"ADMIN_KEY": ADMIN_KEY},
}
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

        cpu = {name: {m: 0.0 for m in ("non_stream", "stream")} for name in CONFIGS}
        done = {name: {m: 0 for m in ("non_stream", "stream")} for name in CONFIGS}
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
            for name in order[r % len(order) :] + order[: r % len(order)]:  # turns rotate
                proxy, ep = proxies[name], _endpoints(proxies[name], sim, headers[name])
                for mode, kind in kinds.items():
                    before = proxy.cpu_seconds()
                    res = await load.closed_loop(
                        session, ep, kind, make, CONCURRENCY, plan.loop_s, 0.0
                    )
                    await asyncio.sleep(WRITE_SETTLE_S)
                    cpu[name][mode] += proxy.cpu_seconds() - before
                    done[name][mode] += res.total
                    errors.merge(res.errors)
        return _figures(cpu, done, errors)
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
    cpu: dict[str, dict[str, float]], done: dict[str, dict[str, int]], errors: load.Errors
) -> dict[str, Any]:
    per_request = {
        name: {m: 1000 * cpu[name][m] / max(1, done[name][m]) for m in cpu[name]} for name in cpu
    }
    ratios = {
        name: {m: per_request[name][m] / per_request["off"][m] for m in per_request[name]}
        for name in per_request
        if name != "off"
    }
    return {
        "concurrency": CONCURRENCY,
        "upstream": FAST.as_dict(),
        "requests": done,
        "proxy_cpu_ms_per_request": per_request,
        "ratio_to_off": ratios,
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
    lines = ["accounts: proxy CPU per request (ms), and the ratio to DATABASE_URL=none"]
    for name, modes in figures["proxy_cpu_ms_per_request"].items():
        cells = []
        for mode, value in modes.items():
            ratio = figures["ratio_to_off"].get(name, {}).get(mode)
            cells.append(f"{mode} {value:.3f}" + (f" ({ratio:.3f}x)" if ratio else ""))
        lines.append(f"  {name:<12} " + ", ".join(cells))
    verdict = "met" if figures["met"] else "MISSED"
    lines.append(f"  target: default <= {TARGET_RATIO:g}x off: {verdict}")
    return "\n".join(lines)


__all__ = ["console", "gate", "measure"]
