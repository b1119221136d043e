"""The simulator and the proxy as child processes on loopback, and their clean shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fal_openai_proxy.base.settings import Settings

from . import procinfo
from .tls import TlsFiles

HOST = "127.0.0.1"
FAL_KEY = "bench-key"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The harness's environment minus every proxy setting, so none leaks into a run."""
    names = {name.upper() for name in Settings.model_fields}
    return {k: v for k, v in os.environ.items() if k.upper() not in names}


@dataclass
class Child:
    """One child process in its own session, so that Ctrl-C reaches only the harness."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    files: list[IO[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (the proxy drains, then exits), then SIGKILL to the whole group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(STOP_TIMEOUT_S)
        # The group is this child's own session: its workers and nothing else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(STOP_TIMEOUT_S)
        for f in self.files:
            f.close()


def _spawn(
    name: str,
    args: list[str],
    env: dict[str, str],
    workdir: Path,
    stdout: Path | None = None,
    prefix: tuple[str, ...] = (),
) -> Child:
    """`prefix`: a command the Python process runs under (valgrind, for instance)."""
    log_path = workdir / f"{name}.log"
    files: list[IO[bytes]] = [log_path.open("wb")]
    if stdout is not None:
        files.append(stdout.open("wb"))
    popen = subprocess.Popen(
        [*prefix, sys.executable, *args],
        cwd=workdir,  # no .env of a developer's checkout is read from here
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=files[1] if stdout is not None else subprocess.DEVNULL,
        stderr=files[0],
        start_new_session=True,
    )
    return Child(name, popen, log_path, files)


@dataclass
class Simulator:
    child: Child
    run_url: str
    queue_url: str
    tls: TlsFiles | None = None  # HTTPS behind this throwaway CA

    @property
    def upstream(self) -> str:
        return "tls" if self.tls else "plain"

    @property
    def base_url(self) -> str:
        return self.run_url.rsplit("/", 1)[0]

    def child_cpu(self) -> float:
        return procinfo.cpu_seconds(self.child.pid)


def start_simulator(
    workdir: Path, latency_ms: float, interval_ms: float, events: int, tls: TlsFiles | None = None
) -> Simulator:
    name = "simulator-tls" if tls else "simulator-plain"
    out_path = workdir / f"{name}.out"
    args = ["-m", "fal_openai_proxy.simulator", "--host", HOST, "--port", "0"]
    args += ["--latency-ms", str(latency_ms), "--interval-ms", str(interval_ms)]
    args += ["--events", str(events), "--log-level", "warning"]
    if tls:
        args += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    child = _spawn(name, args, _clean_env(), workdir, stdout=out_path)
    urls = _wait_for_urls(child, out_path)
    return Simulator(child, urls["FAL_RUN_URL"], urls["FAL_QUEUE_URL"], tls)


def _wait_for_urls(child: Child, out_path: Path) -> dict[str, str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        urls = dict(line.split("=", 1) for line in out_path.read_text().splitlines() if "=" in line)
        if "FAL_RUN_URL" in urls and "FAL_QUEUE_URL" in urls:
            return urls
        if not child.alive():
            break
        time.sleep(0.05)
    child.stop()
    raise RuntimeError(f"simulator did not start:\n{child.log_tail()}")


@dataclass
class Proxy:
    child: Child
    url: str
    workers: int
    # The server runs its one worker in a child process (granian): measure that one.
    worker_child: bool = False

    def pids(self) -> list[int]:
        """The processes serving requests: the workers if there are any, else the main one."""
        if self.workers == 1 and not self.worker_child:
            return [self.child.pid]
        if self.worker_child:
            return procinfo.children(self.child.pid)
        return [
            pid
            for pid in procinfo.children(self.child.pid)
            if "spawn_main" in procinfo.cmdline(pid)
        ]

    def rss_kb(self) -> int:
        return sum(procinfo.rss_kb(pid) for pid in self.pids())

    def cpu_seconds(self) -> float:
        return sum(procinfo.cpu_seconds(pid) for pid in self.pids())

    def total_cpu_seconds(self) -> float:
        """Since start, the supervisor of the workers included."""
        supervised = self.workers > 1 or self.worker_child
        extra = procinfo.cpu_seconds(self.child.pid) if supervised else 0.0
        return self.cpu_seconds() + extra


SET_BY_HARNESS = (
    "FAL_KEY",
    "FAL_RUN_URL",
    "FAL_QUEUE_URL",
    "SSL_CERT_FILE (TLS upstream)",
    "WORKERS (the 2-worker run)",
)


def proxy_settings(sim: Simulator, workers: int, overrides: dict[str, str]) -> dict[str, str]:
    """What the harness sets: where fal is, its key, the CA, the workers; every other setting
    keeps its default (the adaptive key cap among them), unless ``--proxy-env`` says so."""
    env = {"FAL_KEY": FAL_KEY, "FAL_RUN_URL": sim.run_url, "FAL_QUEUE_URL": sim.queue_url}
    if sim.tls:
        env["SSL_CERT_FILE"] = str(sim.tls.ca)  # read by ssl.create_default_context()
    if workers != 1:
        env["WORKERS"] = str(workers)
    return {**env, **overrides}


@dataclass(frozen=True)
class Launch:
    """How a proxy process starts: its server, an optional wrapper command, another source
    tree (a revision to compare with), and how long it may take to come up."""

    name: str = ""
    server: str = "uvicorn"  # or "granian" (bench/granian_app.py)
    server_args: tuple[str, ...] = ()  # more options for the server (granian's)
    prefix: tuple[str, ...] = ()
    src: Path | None = None  # put first on PYTHONPATH: that tree's fal_openai_proxy runs
    start_timeout_s: float = START_TIMEOUT_S


GRANIAN_APP = Path(__file__).resolve().parent / "granian_app.py"


def _server_args(launch: Launch, port: int) -> list[str]:
    if launch.server == "uvicorn":
        return ["-m", "fal_openai_proxy", "--host", HOST, "--port", str(port)]
    if launch.server == "granian":
        return [str(GRANIAN_APP), "--host", HOST, "--port", str(port), *launch.server_args]
    raise ValueError(f"unknown server {launch.server!r}")


def start_proxy(
    workdir: Path,
    sim: Simulator,
    workers: int,
    overrides: dict[str, str] | None = None,
    launch: Launch | None = None,
    name: str | None = None,
) -> Proxy:
    launch = launch or Launch()
    port = free_port()
    env = _clean_env()
    env.update(proxy_settings(sim, workers, overrides or {}))
    if launch.src is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(launch.src), env.get("PYTHONPATH", "")) if p
        )
    args = _server_args(launch, port)
    name = name or f"proxy-{sim.upstream}-w{workers}" + (f"-{launch.name}" if launch.name else "")
    child = _spawn(name, args, env, workdir, prefix=launch.prefix)
    proxy = Proxy(child, f"http://{HOST}:{port}", workers, worker_child=launch.server == "granian")
    try:
        _wait_healthy(proxy, launch.start_timeout_s)
    except BaseException:
        child.stop()
        raise
    return proxy


def _wait_healthy(proxy: Proxy, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proxy.child.alive():
            break
        # With workers, /healthz answers once one is up: wait until all of them are.
        if _healthz_ok(proxy.url) and len(proxy.pids()) == proxy.workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"proxy did not become healthy:\n{proxy.child.log_tail()}")


def _healthz_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False
