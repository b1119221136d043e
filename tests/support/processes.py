"""The proxy (and redis-server) as real child processes, for signals and multi-process tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from .servers import fresh_sqlite_url

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ProxyProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait(timeout=10)


def start_proxy_process(
    env: dict[str, str], args: list[str] | None = None, script: list[str] | None = None
) -> ProxyProcess:
    """Start `python -m fal_openai_proxy` (or `script`) and wait for /healthz."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "API_KEY"))}
    full_env.update({"PORT": str(port), "HOST": "127.0.0.1", **env})
    full_env.setdefault("DATABASE_URL", fresh_sqlite_url())  # never the working directory's
    # The child writes to this file for its whole life; it is read back by output().
    log_file = tempfile.NamedTemporaryFile(prefix="proxy-", suffix=".log", delete=False)  # noqa: SIM115
    command = [sys.executable, *(script or ["-m", "fal_openai_proxy"]), *(args or [])]
    process = subprocess.Popen(
        command, env=full_env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT
    )
    running = ProxyProcess(process, port, Path(log_file.name))
    wait_until_healthy(running)
    return running


def wait_until_healthy(running: ProxyProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"proxy exited early:\n{running.output()}")
        try:
            if httpx.get(running.base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    running.stop()
    raise RuntimeError(f"proxy did not become healthy:\n{running.output()}")


def run_cli(env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the command to completion (for configurations it must refuse)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "API_KEY"))}
    full_env.update(env)
    full_env.setdefault("DATABASE_URL", fresh_sqlite_url())
    return subprocess.run(
        [sys.executable, "-m", "fal_openai_proxy", *args],
        env=full_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


@dataclass
class SimulatorProcess:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def run_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/run"

    @property
    def queue_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/queue"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def start_simulator_process(*args: str) -> SimulatorProcess:
    port = free_port()
    command = [sys.executable, "-m", "fal_openai_proxy.simulator", "--port", str(port), *args]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return SimulatorProcess(process, port)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("simulator process did not start")


def raise_open_file_limit(wanted: int = 16384) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
