"""What an operator sees in a terminal: readable log lines (LOG_FORMAT=auto on a tty, JSON
when piped), and a start-up banner that tells the proxy from the simulator."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.asserts import wait_for
from ..support.chat import MODEL
from ..support.processes import REPO, ProxyProcess, free_port, start_proxy_process
from ..support.servers import FAL_KEY


@dataclass
class TerminalProxy:
    """The proxy with stderr (and stdout) on a pseudo-terminal."""

    process: subprocess.Popen[bytes]
    port: int
    chunks: list[bytes] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return b"".join(self.chunks).decode(errors="replace").replace("\r\n", "\n")


def start_on_terminal(env: dict[str, str], args: list[str]) -> TerminalProxy:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "API_KEY"))}
    full_env.pop("LOG_FORMAT", None)
    full_env.update({"PORT": str(port), "HOST": "127.0.0.1", **env})
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fal_openai_proxy", *args],
        env=full_env, cwd=REPO, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(slave)
    running = TerminalProxy(process, port)

    def drain() -> None:  # a full pty would block the child
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            running.chunks.append(data)
        os.close(master)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, running.output()
        try:
            if httpx.get(running.base_url + "/healthz", timeout=1).status_code == 200:
                return running
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"proxy did not start:\n{running.output()}")


@pytest.fixture
def terminal_proxies(secret_audit: list[str]) -> Iterator[list[TerminalProxy]]:
    started: list[TerminalProxy] = []
    yield started
    for running in started:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=15)
        secret_audit.append(running.output())


def chat(base_url: str, text: str, request_id: str) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    headers = {"X-Request-ID": request_id}
    return httpx.post(base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def output_with(running: TerminalProxy | ProxyProcess, needle: str) -> str:
    """The process's output once it holds `needle`."""
    return wait_for(lambda: needle in (out := running.output()) and out, 10, repr(needle))


def test_simulate_on_a_terminal_text_lines_and_a_clear_banner(
    terminal_proxies: list[TerminalProxy],
) -> None:
    running = start_on_terminal({}, ["--simulate"])
    terminal_proxies.append(running)
    assert chat(running.base_url, "hi", "term-ok-1").status_code == 200
    failed = chat(running.base_url, 'x [[sim {"status": 503}]]', "term-fail-1")
    assert failed.status_code == 503
    output = output_with(running, "term-fail-1")

    # The banner names both servers and their URLs.
    assert f"proxy (point OpenAI clients here): {running.base_url}/v1" in output
    sim_url = re.search(r"fal simulator \(the proxy's upstream, internal\): (http://\S+)", output)
    assert sim_url and sim_url.group(1) != running.base_url, output
    # uvicorn's start-up lines appear once: the simulator's are not mistaken for the proxy's.
    assert output.count("Started server process") == 1, output
    assert output.count("Uvicorn running on") == 1, output
    assert f"Uvicorn running on {running.base_url}" in output

    # Request lines are readable text carrying the key fields.
    ok = next(line for line in output.splitlines() if "term-ok-1" in line)
    assert re.search(r"INFO +POST /v1/chat/completions 200 [\d.]+ms model=" + MODEL, ok), ok
    assert "request_id=term-ok-1" in ok and not ok.lstrip().startswith("{")
    bad = next(line for line in output.splitlines() if "term-fail-1" in line)
    assert " 503 " in bad and "error_type=" in bad, bad


def sim_env(sim: SimulatorThread, **extra: str) -> dict[str, str]:
    return {"FAL_KEY": FAL_KEY, "FAL_RUN_URL": sim.run_url, "FAL_QUEUE_URL": sim.queue_url, **extra}


def test_piped_logs_are_json(sim: SimulatorThread, secret_audit: list[str]) -> None:
    running = start_proxy_process(sim_env(sim))
    try:
        assert chat(running.base_url, "hi", "piped-1").status_code == 200
        output = output_with(running, "piped-1")
    finally:
        running.stop()
        secret_audit.append(running.output())
    line = next(line for line in output.splitlines() if "piped-1" in line)
    entry = json.loads(line)
    assert entry["status"] == 200 and entry["model"] == MODEL
    assert entry["path"] == "/v1/chat/completions" and entry["duration_ms"] > 0


def test_log_format_text_forced_when_piped(sim: SimulatorThread, secret_audit: list[str]) -> None:
    running = start_proxy_process(sim_env(sim, LOG_FORMAT="text"))
    try:
        assert chat(running.base_url, "hi", "forced-text-1").status_code == 200
        output = output_with(running, "forced-text-1")
    finally:
        running.stop()
        secret_audit.append(running.output())
    line = next(line for line in output.splitlines() if "forced-text-1" in line)
    assert " POST /v1/chat/completions 200 " in line and not line.startswith("{")


def test_log_format_json_forced_on_a_terminal(
    sim: SimulatorThread, terminal_proxies: list[TerminalProxy]
) -> None:
    running = start_on_terminal(sim_env(sim, LOG_FORMAT="json"), [])
    terminal_proxies.append(running)
    assert chat(running.base_url, "hi", "forced-json-1").status_code == 200
    output = output_with(running, "forced-json-1")
    line = next(line for line in output.splitlines() if "forced-json-1" in line)
    assert json.loads(line)["request_id"] == "forced-json-1"
