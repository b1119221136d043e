"""``python -m bench.cpu``: the proxy's CPU per request, contender against contender, in one run.

Contenders are proxies started side by side against the same simulator (fal over plain HTTP
or TLS, 0 ms upstream): this tree under uvicorn (``--server uvicorn``, the default), under
granian (``--server granian``: bench/granian_app.py), or another revision of the project under
uvicorn (``--rev REV``: a temporary git worktree). Each round sends every contender the same
fixed number of requests at a fixed concurrency, in a rotating order, so that a busy
neighbour on a shared box hits all of them alike; the figures are medians over the rounds.

Two measures of CPU:
- utime + stime of the serving process from /proc (all its threads, the kernel's work for
  its sockets included): what `make bench` reports, and what a busy box inflates;
- with ``--callgrind``, the instructions the process executed (valgrind's callgrind, counted
  only while measuring): repeatable to a fraction of a percent whatever else the machine
  runs, but blind to the kernel and about 50 times slower.

Also the memory per open stream of each contender (VmRSS with idle streams held open).

    python -m bench.cpu --server uvicorn --server granian     # the server comparison
    python -m bench.cpu --rev main --callgrind --upstream tls  # this tree against main
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from . import load, procinfo, tls, wire
from .plan import FAST, Upstream
from .processes import HOST, Child, Launch, Proxy, Simulator, start_proxy, start_simulator
from .run import new_session, raise_fd_limit

REPO = Path(__file__).resolve().parent.parent
MODES = ("non_stream", "stream")
# Contenders serving this tree: the server, and granian's options.
SERVERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "uvicorn": ("uvicorn", ()),
    "granian": ("granian", ()),  # asyncio tasks, runtime mode auto (its defaults)
    "granian-rust-tasks": ("granian", ("--task-impl", "rust")),
    "granian-st": ("granian", ("--runtime-mode", "st")),
}
# Under valgrind a proxy starts in tens of seconds and runs ~50x slower.
CALLGRIND_START_S = 180.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument(
        "--server",
        action="append",
        choices=tuple(SERVERS),
        help="a contender serving this tree (repeatable; default: uvicorn)",
    )
    parser.add_argument(
        "--rev", action="append", default=[], help="a contender: another revision, uvicorn"
    )
    parser.add_argument(
        "--upstream", action="append", choices=("plain", "tls"), help="default: both"
    )
    parser.add_argument("--mode", action="append", choices=MODES, help="default: both")
    parser.add_argument("--requests", type=int, help="per contender, mode and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--interval-ms", type=float, default=5.0, help="between stream events (default 5)"
    )
    parser.add_argument("--events", type=int, default=10, help="per stream (default 10)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle-streams", type=int, default=500, help="0: no memory figure")
    parser.add_argument("--callgrind", action="store_true", help="count instructions too")
    parser.add_argument(
        "--proxy-env", action="append", default=[], metavar="NAME=VALUE", help="for every proxy"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--py-spy", type=Path, help="record each contender's stacks here during the rounds"
    )
    parser.add_argument(
        "--keep", type=Path, help="copy the callgrind dumps here (for callgrind_annotate)"
    )
    args = parser.parse_args(argv)
    args.server = args.server or ([] if args.rev else ["uvicorn"])
    if args.callgrind and any(SERVERS[name][0] == "granian" for name in args.server):
        # valgrind runs the process it starts; granian serves from a worker process it
        # spawns, which would run uninstrumented (no instruction count ever comes).
        parser.error("--callgrind counts uvicorn contenders only, not granian's")
    args.upstream = args.upstream or ["plain", "tls"]
    args.mode = args.mode or list(MODES)
    if args.requests is None:
        args.requests = 300 if args.callgrind else 2000
    args.overrides = dict(_setting(item) for item in args.proxy_env)
    return args


def _setting(item: str) -> tuple[str, str]:
    name, _, value = item.partition("=")
    return name.upper(), value


# -- instruction counts ----------------------------------------------------------------------


class Callgrind:
    """Counts a process's instructions between `start` and `stop` (callgrind_control)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(exist_ok=True)

    def prefix(self, name: str) -> tuple[str, ...]:
        return (
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",  # start-up runs uninstrumented: far faster
            f"--callgrind-out-file={self.folder / name}.%p",
        )

    @staticmethod
    def _control(*args: str) -> str:
        done = subprocess.run(
            ["callgrind_control", *args], capture_output=True, text=True, timeout=120, check=True
        )
        return done.stdout

    def instrument(self, pid: int) -> None:
        self._control("-i", "on", str(pid))

    def zero(self, pid: int) -> None:
        self._control("-z", str(pid))

    def count(self, pid: int) -> int:
        """Instructions since the last `zero`."""
        before = set(self.folder.iterdir())
        self._control("-d", str(pid))
        for _ in range(600):
            new = [p for p in set(self.folder.iterdir()) - before if f".{pid}." in p.name]
            if new:
                text = max(new, key=lambda p: p.stat().st_mtime).read_text(errors="replace")
                for line in text.splitlines():
                    if line.startswith(("summary:", "totals:")):
                        return int(line.split()[1])
            time.sleep(0.1)
        raise RuntimeError(f"no callgrind dump from {pid}")


# -- contenders ------------------------------------------------------------------------------


@dataclass
class Contender:
    launch: Launch
    proxy: Proxy | None = None
    cpu_ms: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    sys_ms: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    instructions: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    rps: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.launch.name

    def pid(self) -> int:
        assert self.proxy is not None
        pids = self.proxy.pids()
        if len(pids) != 1:
            raise RuntimeError(f"{self.name}: expected one serving process, found {pids}")
        return pids[0]


@contextlib.contextmanager
def worktree(rev: str, parent: Path) -> Iterator[Path]:
    """A checkout of `rev` (its src/ goes first on the proxy's PYTHONPATH)."""
    path = parent / f"rev-{rev.replace('/', '-')}"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(path), rev], cwd=REPO, check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, check=False)


def contenders(
    args: argparse.Namespace, trees: dict[str, Path], grind: Callgrind | None
) -> list[Contender]:
    out = []
    timeout = CALLGRIND_START_S if grind else 30.0
    for name in args.server:
        server, options = SERVERS[name]
        prefix = grind.prefix(name) if grind else ()
        out.append(Contender(Launch(name, server, options, prefix, None, timeout)))
    for rev in args.rev:
        name = f"uvicorn@{rev}"
        prefix = grind.prefix(f"rev-{len(out)}") if grind else ()
        out.append(Contender(Launch(name, "uvicorn", (), prefix, trees[rev] / "src", timeout)))
    return out


# -- measuring -------------------------------------------------------------------------------


async def segment(
    session: aiohttp.ClientSession,
    ep: wire.Endpoints,
    mode: str,
    questions: wire.Questions,
    requests: int,
    concurrency: int,
    upstream: Upstream = FAST,
) -> load.Errors:
    """Exactly `requests` requests, `concurrency` at a time."""
    kind = wire.proxy_complete if mode == "non_stream" else wire.proxy_stream
    if mode == "stream":
        kind = wire.expecting_chunks(kind, upstream.events)
    left = iter(range(requests))
    outcomes: list[wire.Outcome] = []

    async def client() -> None:
        for _ in left:
            outcomes.append(await kind(session, ep, questions.next(upstream.events)))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    errors = load.Errors()
    errors.add(outcomes)
    return errors


async def measure(
    args: argparse.Namespace,
    upstream: str,
    workdir: Path,
    started: list[Child],
    trees: dict[str, Path],
) -> dict[str, Any]:
    ca = tls.throwaway_ca(workdir, HOST)
    sim: Simulator = start_simulator(
        workdir, FAST.latency_ms, FAST.interval_ms, FAST.events, ca if upstream == "tls" else None
    )
    started.append(sim.child)
    grind = Callgrind(workdir / f"callgrind-{upstream}") if args.callgrind else None
    racers = contenders(args, trees, grind)
    # Non-stream requests at 0 ms: how many status events the queue sends would otherwise
    # depend on the proxy's speed.
    timing = {
        "non_stream": Upstream(0.0, 0.0, args.events),
        "stream": Upstream(0.0, args.interval_ms, args.events),
    }
    questions = wire.Questions(str(int(time.time()) % 100_000))
    errors = load.Errors()
    async with new_session(ca) as session:
        for racer in racers:
            racer.proxy = start_proxy(workdir, sim, 1, args.overrides, racer.launch)
            started.append(racer.proxy.child)
            print(f"[{upstream}] {racer.name} up at {racer.proxy.url}", file=sys.stderr)
        for racer in racers:
            assert racer.proxy is not None
            ep = wire.Endpoints(racer.proxy.url, sim.run_url, sim.queue_url)
            if grind:
                grind.instrument(racer.pid())
            for mode in args.mode:  # warm-up: connections, caches, the JIT-less paths
                warm = max(50, args.requests // 5)
                await load.patch_simulator(session, sim.base_url, **timing[mode].as_dict())
                errors.merge(
                    await segment(
                        session, ep, mode, questions, warm, args.concurrency, timing[mode]
                    )
                )
        spies = [spy(args.py_spy, upstream, racer) for racer in racers] if args.py_spy else []
        for r in range(args.rounds):
            order = racers[r % len(racers) :] + racers[: r % len(racers)]
            for racer in order:
                assert racer.proxy is not None
                ep = wire.Endpoints(racer.proxy.url, sim.run_url, sim.queue_url)
                pid = racer.pid()
                for mode in args.mode:
                    await load.patch_simulator(session, sim.base_url, **timing[mode].as_dict())
                    if grind:
                        grind.zero(pid)
                    split0, t0 = procinfo.cpu_split_seconds(pid), time.perf_counter()
                    errors.merge(
                        await segment(
                            session,
                            ep,
                            mode,
                            questions,
                            args.requests,
                            args.concurrency,
                            timing[mode],
                        )
                    )
                    wall = time.perf_counter() - t0
                    split1 = procinfo.cpu_split_seconds(pid)
                    user, system = (
                        1000 * (b - a) / args.requests for a, b in zip(split0, split1, strict=True)
                    )
                    racer.cpu_ms[mode].append(user + system)
                    racer.sys_ms[mode].append(system)
                    racer.rps[mode].append(args.requests / wall)
                    if grind:
                        racer.instructions[mode].append(grind.count(pid) / args.requests)
            print(f"[{upstream}] round {r + 1}/{args.rounds} done", file=sys.stderr)
        for process in spies:
            process.send_signal(signal.SIGINT)
            process.wait(60)
        if args.idle_streams:
            for racer in racers:
                racer.memory = await idle_memory(session, racer, sim, questions, args.idle_streams)
    return {
        "contenders": {r.name: summary(r) for r in racers},
        "errors": {"count": errors.count, "samples": errors.samples},
    }


def spy(folder: Path, upstream: str, racer: Contender) -> subprocess.Popen[bytes]:
    """py-spy's samples of one contender (collapsed stacks, one file per contender)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{upstream}-{racer.name.replace('/', '-')}.txt"
    command = ["py-spy", "record", "--pid", str(racer.pid()), "--rate", "500"]
    command += ["--format", "raw", "--output", str(out)]
    spy_bin = Path(sys.executable).parent / "py-spy"
    if spy_bin.exists():
        command[0] = str(spy_bin)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def idle_memory(
    session: aiohttp.ClientSession,
    racer: Contender,
    sim: Simulator,
    questions: wire.Questions,
    count: int,
) -> dict[str, Any]:
    assert racer.proxy is not None
    ep = wire.Endpoints(racer.proxy.url, sim.run_url, sim.queue_url)
    pid = racer.pid()
    await asyncio.sleep(1.0)
    before = procinfo.rss_kb(pid)
    streams = load.IdleStreams(session, ep, questions)
    try:
        opened = await streams.open(count, 100)
        await asyncio.sleep(1.0)
        held = procinfo.rss_kb(pid)
    finally:
        await streams.close()
    return {
        "streams": opened,
        "rss_before_kb": before,
        "rss_open_kb": held,
        "per_open_stream_kb": (held - before) / max(1, opened),
        "errors": streams.errors.count,
    }


def summary(r: Contender) -> dict[str, Any]:
    out: dict[str, Any] = {"memory": r.memory}
    for mode in MODES:
        if not r.cpu_ms[mode]:
            continue
        out[mode] = {
            "cpu_ms_per_request": statistics.median(r.cpu_ms[mode]),
            "cpu_ms_rounds": r.cpu_ms[mode],
            "sys_ms_per_request": statistics.median(r.sys_ms[mode]),
            "rps_median": statistics.median(r.rps[mode]),
        }
        if r.instructions[mode]:
            out[mode]["instructions_per_request"] = statistics.median(r.instructions[mode])
            out[mode]["instructions_rounds"] = r.instructions[mode]
    return out


def table(upstream: str, figures: dict[str, Any]) -> str:
    names = list(figures["contenders"])
    base = figures["contenders"][names[0]]
    lines = [
        f"\n[{upstream}] per request (median of rounds); ratio against {names[0]}",
        "| contender | mode | CPU ms | of which kernel | ratio | instructions | ratio | req/s "
        "| RSS/open stream |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        c = figures["contenders"][name]
        for mode in MODES:
            if mode not in c:
                continue
            cpu = c[mode]["cpu_ms_per_request"]
            ins = c[mode].get("instructions_per_request")
            b_ins = base[mode].get("instructions_per_request")
            mem = c["memory"].get("per_open_stream_kb")
            lines.append(
                f"| {name} | {mode} | {cpu:.3f} | {c[mode]['sys_ms_per_request']:.3f} | "
                f"{cpu / base[mode]['cpu_ms_per_request']:.2f} | "
                + (f"{ins / 1e6:.3f} M | {ins / b_ins:.3f}" if ins and b_ins else "n/a | n/a")
                + f" | {c[mode]['rps_median']:,.0f} | "
                + (f"{mem:.1f} KB" if mem is not None and mode == "stream" else "")
                + " |"
            )
    lines.append(f"errors: {figures['errors']['count']} {figures['errors']['samples']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    results: dict[str, Any] = {
        "machine": procinfo.machine(REPO).as_dict(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fal-proxy-cpu-")))
        trees = {rev: stack.enter_context(worktree(rev, tmp)) for rev in args.rev}
        for upstream in args.upstream:
            started: list[Child] = []
            try:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    figures = runner.run(measure(args, upstream, tmp, started, trees))
            finally:
                for child in reversed(started):
                    child.stop()
            results[upstream] = figures
            print(table(upstream, figures))
        if args.keep is not None:
            for folder in tmp.glob("callgrind-*"):
                shutil.copytree(folder, args.keep / folder.name, dirs_exist_ok=True)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    errors = sum(results[u]["errors"]["count"] for u in args.upstream)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
