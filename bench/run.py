"""``python -m bench.run [--quick]``: the proxy against a direct fal client, side by side,
with fal reached over plain HTTP and over HTTPS (as in production)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import orjson
import uvloop

from . import accounting, phases, procinfo, report, tls
from .load import Errors
from .plan import FAST, FULL, QUICK, Plan
from .processes import (
    HOST,
    SET_BY_HARNESS,
    Child,
    Proxy,
    Simulator,
    start_proxy,
    start_simulator,
)
from .targets import UPSTREAMS, Verdict, evaluate
from .wire import Questions

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
LOGS = RESULTS / "logs"  # of the last run that had errors (not in git)
DOC = REPO / "docs" / "benchmarks.md"
MAX_LOG_SAMPLES = 8


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke run (<90 s, one worker): fail only on errors and gross regressions",
    )
    parser.add_argument(
        "--nonstream-mode",
        choices=("queue", "run"),
        default="queue",
        help="the proxy's FAL_NONSTREAM_MODE for the non-stream phases (default: queue)",
    )
    parser.add_argument(
        "--proxy-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a proxy setting other than its default (repeatable; recorded in the results)",
    )
    args = parser.parse_args(argv)
    try:
        args.overrides = dict(_setting(item) for item in args.proxy_env)
        if args.nonstream_mode != "queue":
            args.overrides["FAL_NONSTREAM_MODE"] = args.nonstream_mode
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _setting(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise ValueError(f"--proxy-env {item!r}: expected NAME=VALUE")
    return name.upper(), value


def raise_fd_limit() -> None:
    """Thousands of open streams need thousands of sockets; children inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # same clean-up path as Ctrl-C


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """Every child started, stopped on the way out whatever happens."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def new_session(ca: tls.TlsFiles) -> aiohttp.ClientSession:
    # The connection limit is far above any concurrency used, idle streams included. The
    # direct client trusts the throwaway CA, so it pays for TLS just as the proxy does.
    connector = aiohttp.TCPConnector(
        limit=10_000, limit_per_host=0, keepalive_timeout=60, ssl=ca.client_context()
    )
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))


async def one_worker(b: phases.Bench) -> dict[str, Any]:
    await phases.warm_up(b)
    baseline = await phases.settled_rss(b)
    idle = await phases.idle_streams(b, baseline)
    out: dict[str, Any] = {"idle_streams": idle}
    out["latency"] = await phases.latency(b)
    out["throughput_w1"] = await phases.throughput(b)
    out["inter_chunk"] = await phases.inter_chunk(b)
    out["memory"] = memory_figures(baseline, idle, await phases.settled_rss(b))
    return out


def memory_figures(baseline: int, idle: dict[str, Any], after: int) -> dict[str, Any]:
    growth = 100 * (after - baseline) / baseline
    high_water = idle["rss_after_first_burst_kb"]
    return {
        "baseline_kb": baseline,
        "after_idle_streams_kb": high_water,
        "after_load_kb": after,
        "after_load_growth_pct": growth,
        "after_load_growth_abs_pct": abs(growth),
        # Growth once the first burst of open streams has set the high-water mark: a leak
        # shows here, memory merely kept by the allocator does not.
        "growth_after_first_burst_pct": 100 * (after - high_water) / high_water,
        "per_open_stream_kb": idle["per_open_stream_kb"],
    }


async def two_workers(b: phases.Bench) -> dict[str, Any]:
    await phases.warm_up(b)
    baseline = await phases.settled_rss(b)
    tput = await phases.throughput(b)
    return {
        "throughput_w2": tput,
        "memory_w2": {"baseline_kb": baseline, "after_load_kb": await phases.settled_rss(b)},
    }


async def measure(
    plan: Plan, workdir: Path, started: list[Child], overrides: dict[str, str]
) -> dict[str, Any]:
    ca = tls.throwaway_ca(workdir, HOST)
    sims: dict[str, Simulator] = {}
    for name in UPSTREAMS:
        sim = start_simulator(
            workdir, FAST.latency_ms, FAST.interval_ms, FAST.events, ca if name == "tls" else None
        )
        started.append(sim.child)
        sims[name] = sim
    questions = Questions(str(int(time.time()) % 100_000))
    errors = {name: Errors() for name in UPSTREAMS}
    figures: dict[str, dict[str, Any]] = {name: {} for name in UPSTREAMS}
    logs: list[Path] = []
    first = phases.sample_cpu(None, *sims.values())
    proxies_cpu = 0.0
    async with new_session(ca) as session:
        gc.collect()
        gc.freeze()  # fewer, shorter collections in the load generator while it measures
        # Plain and TLS one after the other for each worker count: like with like, close in time.
        for workers in plan.workers:
            for name, sim in sims.items():
                proxy = start_proxy(workdir, sim, workers, overrides)
                started.append(proxy.child)
                logs.append(proxy.child.log_path)
                print(f"proxy ({name}, {workers} worker(s)) up at {proxy.url}", file=sys.stderr)
                b = phases.Bench(plan, session, sim, proxy, questions)
                try:
                    run = one_worker if workers == 1 else two_workers
                    figures[name].update(await run(b))
                finally:
                    errors[name].merge(b.errors)
                    with contextlib.suppress(OSError):  # a proxy that died has no /proc entry
                        proxies_cpu += proxy.total_cpu_seconds()
                    _stop(proxy, started)
        # What accounts add per request, in the same run (plain upstream, one worker).
        account_figures = await accounting.measure(
            plan, session, sims["plain"], workdir, started, questions
        )
        print(accounting.console(account_figures), file=sys.stderr)
    used = phases.sample_cpu(None, *sims.values()) - first
    if any(e.count for e in errors.values()):
        keep_logs(workdir)
    return {
        "upstreams": figures,
        "accounts": account_figures,
        "upstream_tls": ca.describe(),
        "foreign_cpu_cores": replace(used, proxy=proxies_cpu).foreign_cores(),
        "errors": errors,
        "proxy_log": log_findings(logs),
        "simulator_alive": {name: sim.child.alive() for name, sim in sims.items()},
    }


def keep_logs(workdir: Path) -> None:
    """The run's logs outlive its temporary folder when something failed."""
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in LOGS.glob("*.log"):
        old.unlink()
    for log in workdir.glob("*.log"):
        shutil.copy(log, LOGS / log.name)
    print(f"errors: the logs are kept in {LOGS}", file=sys.stderr)


def _stop(proxy: Proxy, started: list[Child]) -> None:
    proxy.child.stop()
    started.remove(proxy.child)


def log_findings(paths: list[Path]) -> dict[str, Any]:
    """Count the proxy's log lines by level, with the warnings and errors it wrote."""
    levels: Counter[str] = Counter()
    notable: Counter[str] = Counter()
    for path in paths:
        for line in path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # the start-up banner
            level = str(entry.get("level", "?"))
            levels[level] += 1
            if level in ("warning", "error", "critical"):
                notable[f"{level}: {entry.get('logger')}: {entry.get('msg')}"] += 1
    return {"levels": dict(levels), "notable": dict(notable.most_common(MAX_LOG_SAMPLES))}


def assemble(plan: Plan, figures: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    machine = procinfo.machine(REPO)
    errors: dict[str, Errors] = figures["errors"]
    total = Errors()
    for name, errs in errors.items():
        total.merge(Errors(errs.count, [f"[{name}] {s}" for s in errs.samples]))
    return {
        "date": datetime.date.today().isoformat(),
        "mode": "quick" if plan.quick else "full",
        "machine": {**machine.as_dict(), "src_dirty": procinfo.src_dirty(REPO)},
        "plan": plan.as_dict(),
        # Every setting not named here is the proxy's default.
        "proxy_settings": {
            "set_by_harness": list(SET_BY_HARNESS),
            "overrides": overrides,
        },
        "upstreams": {
            name: upstream_results(name, figures["upstreams"][name], errors[name], figures)
            for name in UPSTREAMS
        },
        "errors": {"count": total.count, "samples": total.samples},
        "accounts": figures["accounts"],
        "proxy_log": figures["proxy_log"],
        "simulator_alive": all(figures["simulator_alive"].values()),
        "foreign_cpu_cores": figures["foreign_cpu_cores"],
    }


def upstream_results(
    name: str, f: dict[str, Any], errors: Errors, figures: dict[str, Any]
) -> dict[str, Any]:
    """One upstream's figures; every upstream has the same shape (the targets' keys)."""
    out: dict[str, Any] = {
        "scheme": "https" if name == "tls" else "http",
        "latency": f["latency"],
        "throughput": {"w1": f["throughput_w1"]},
        "inter_chunk": f["inter_chunk"],
        "idle_streams": f["idle_streams"],
        "memory": f["memory"],
        "errors": {"count": errors.count, "samples": errors.samples},
        "simulator_alive": figures["simulator_alive"][name],
    }
    if name == "tls":
        out["tls"] = figures["upstream_tls"]
    if "throughput_w2" in f:
        out["throughput"]["w2"] = f["throughput_w2"]
        out["memory_w2"] = f["memory_w2"]
    return out


def quick_gate(results: dict[str, Any], verdicts: list[Verdict]) -> list[str]:
    """Reasons to fail CI: any error at all, or a figure grossly worse than its target."""
    reasons = [f"{results['errors']['count']} failed or wrong responses"] * bool(
        results["errors"]["count"]
    )
    reasons += accounting.gate(results["accounts"])
    for v in verdicts:
        if v.gross:
            t = v.target
            reasons.append(
                f"[{v.upstream}] {t.gross_key or t.label}: {report.num(v.gross_value, 3)}{t.unit} "
                f"(gross limit {t.gross_for(v.upstream):g}{t.unit}, errors {v.errors})"
            )
    return reasons


def publish(plan: Plan, results: dict[str, Any], verdicts: list[Verdict]) -> int:
    results["targets"] = [v.as_dict() for v in verdicts]
    print(report.console(results, verdicts))
    if plan.quick:
        reasons = quick_gate(results, verdicts)
        results["quick_gate"] = {"failed": bool(reasons), "reasons": reasons}
        suffix = "" if results.get("nonstream_mode", "queue") == "queue" else "-run"
        report.write_json(results, RESULTS / f"quick-latest{suffix}.json")
        for reason in reasons:
            print(f"QUICK BENCH FAILED: {reason}", file=sys.stderr)
        return 1 if reasons else 0
    report.write_json(results, RESULTS / f"{results['date']}.json")
    profile = report.existing_profile(DOC)
    DOC.write_text(report.markdown_page(results, verdicts, profile))
    print(f"\nwrote {RESULTS / (results['date'] + '.json')} and {DOC}")
    return 1 if results["errors"]["count"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    raise_fd_limit()
    signal.signal(signal.SIGTERM, _sigterm)
    started_at = time.perf_counter()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="fal-proxy-bench-") as tmp,
            children() as started,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            figures = runner.run(measure(plan, Path(tmp), started, args.overrides))
    except KeyboardInterrupt:
        print("interrupted: the simulator and the proxy were stopped", file=sys.stderr)
        return 130
    results = assemble(plan, figures, args.overrides)
    results["nonstream_mode"] = args.nonstream_mode
    results["wall_time_s"] = time.perf_counter() - started_at
    code = publish(plan, results, evaluate(results))
    print(f"wall time {results['wall_time_s']:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
