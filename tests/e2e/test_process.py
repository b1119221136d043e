"""The proxy as a real process: start-up checks, SIGTERM draining, workers, and a rate limit
shared by two processes through a real redis-server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.chat import MODEL
from ..support.processes import ProxyProcess, free_port, run_cli, start_proxy_process
from ..support.redis import RedisServer
from ..support.servers import API_KEY, FAL_KEY


def fal_env(sim: SimulatorThread, **extra: str) -> dict[str, str]:
    return {"FAL_KEY": FAL_KEY, "FAL_RUN_URL": sim.run_url, "FAL_QUEUE_URL": sim.queue_url, **extra}


@pytest.fixture
def processes(secret_audit: list[str]) -> Iterator[list[ProxyProcess]]:
    """Started processes are stopped after the test, and their output joins the audit."""
    started: list[ProxyProcess] = []
    yield started
    for running in started:
        running.stop()
        secret_audit.append(running.output())


def chat(base_url: str, text: str, **extra: Any) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(base_url + "/v1/chat/completions", json=body, timeout=30)


def test_refuses_public_host_without_api_key(sim: SimulatorThread) -> None:
    result = run_cli(fal_env(sim), ["--host", "0.0.0.0", "--port", str(free_port())])
    assert result.returncode != 0
    assert "API_KEY" in result.stderr and "ALLOW_UNAUTHENTICATED" in result.stderr
    assert FAL_KEY not in result.stderr + result.stdout


def test_refuses_api_key_without_fal_key() -> None:
    result = run_cli({"API_KEY": API_KEY}, ["--port", str(free_port())])
    assert result.returncode != 0
    assert "FAL_KEY" in result.stderr
    assert API_KEY not in result.stderr + result.stdout


def test_public_host_allowed_when_explicitly_unauthenticated(
    sim: SimulatorThread, processes: list[ProxyProcess]
) -> None:
    running = start_proxy_process(fal_env(sim, HOST="0.0.0.0", ALLOW_UNAUTHENTICATED="1"))
    processes.append(running)
    assert chat(running.base_url, "open").status_code == 200


def test_example_py_simulates_without_fal_key(processes: list[ProxyProcess]) -> None:
    """The seed's quick start: `python example.py` with no FAL_KEY streams a simulated answer."""
    running = start_proxy_process({}, args=["--simulate"], script=["example.py"])
    processes.append(running)
    client = openai.OpenAI(base_url=running.base_url + "/v1", api_key="anything", max_retries=0)
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == (
        "Simulated answer to: hello"
    )
    assert "SIMULATED" in running.output()


def test_pass_through_mode_is_announced(
    sim: SimulatorThread, processes: list[ProxyProcess]
) -> None:
    env = fal_env(sim)
    del env["FAL_KEY"]
    running = start_proxy_process(env)
    processes.append(running)
    assert "pass-through" in running.output()


def test_a_password_in_a_url_setting_is_never_printed(
    sim: SimulatorThread, processes: list[ProxyProcess]
) -> None:
    """The start banner printed FAL_RUN_URL whole, password included."""
    password = "url-password-5e0d1b"
    with_password = sim.run_url.replace("://", f"://fal:{password}@")
    running = start_proxy_process(fal_env(sim, FAL_RUN_URL=with_password, LOG_LEVEL="debug"))
    processes.append(running)
    assert chat(running.base_url, "hi").status_code == 200
    output = running.output()
    assert "://***@127.0.0.1" in output  # the banner names the upstream, without the password
    assert password not in output


def _stream_in_background(base_url: str, text: str, lines: list[str]) -> threading.Thread:
    def read() -> None:
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": text}]}
        try:
            with httpx.stream(
                "POST", base_url + "/v1/chat/completions", json=body, timeout=30
            ) as r:
                lines.extend(line for line in r.iter_lines() if line)
        except httpx.TransportError as exc:  # a stream cut at the drain timeout
            lines.append(f"<{type(exc).__name__}>")

    thread = threading.Thread(target=read)
    thread.start()
    return thread


def test_sigterm_drains_in_flight_streams_then_exits_zero(
    sim: SimulatorThread, processes: list[ProxyProcess]
) -> None:
    running = start_proxy_process(fal_env(sim, DRAIN_TIMEOUT="10"))
    processes.append(running)
    lines: list[str] = []
    reader = _stream_in_background(
        running.base_url, 'long [[sim {"events": 6, "interval_ms": 250}]]', lines
    )
    deadline = time.monotonic() + 5
    while not any('"content":"Simulated' in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.02)
    running.process.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    assert httpx.get(running.base_url + "/readyz", timeout=2).status_code == 503
    refused = chat(running.base_url, "too late")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "service_unavailable"
    reader.join(timeout=10)
    assert lines[-1] == "data: [DONE]"  # the in-flight stream finished
    assert "".join(lines).count('"finish_reason":"stop"') == 1
    assert running.process.wait(timeout=10) == 0


def test_drain_timeout_bounds_shutdown(sim: SimulatorThread, processes: list[ProxyProcess]) -> None:
    running = start_proxy_process(fal_env(sim, DRAIN_TIMEOUT="0.5"))
    processes.append(running)
    lines: list[str] = []
    reader = _stream_in_background(running.base_url, 'endless [[sim {"hang": true}]]', lines)
    time.sleep(0.5)
    started = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 4
    reader.join(timeout=10)
    # The stream still open is told why it ends, then ends cleanly (not cut, not hanging).
    assert '"code":"server_shutting_down"' in lines[-2]
    assert lines[-1] == "data: [DONE]"


def test_two_workers_serve_and_drain(sim: SimulatorThread, processes: list[ProxyProcess]) -> None:
    running = start_proxy_process(fal_env(sim, WORKERS="2"))
    processes.append(running)
    for i in range(6):
        response = chat(running.base_url, f"worker {i}")
        assert (
            response.json()["choices"][0]["message"]["content"]
            == f"Simulated answer to: worker {i}"
        )
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=15) == 0


@pytest.fixture
def redis_url() -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        message = "redis-server is not installed (CI installs the Debian package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


def test_rate_limit_is_shared_through_redis(
    sim: SimulatorThread, redis_url: str, processes: list[ProxyProcess]
) -> None:
    env = fal_env(sim, API_KEY=API_KEY, RATE_LIMIT_RPM="4", REDIS_URL=redis_url)
    first, second = start_proxy_process(env), start_proxy_process(env)
    processes += [first, second]
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "shared"}]}
    statuses = []
    for running in (first, second, first, second, first, second):
        response = httpx.post(
            running.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.json", None),
        ("latin1.yaml", b"- caf\xe9/model\n"),
        ("huge.json", b'[{"id": "a/b", "created": 1e400}]'),
        ("string.json", b'[{"id": "a/b", "created": "1.5"}]'),
        ("syntax.json", b"[{"),
        ("nested.yaml", b"- [1, 2]\n"),
    ],
)
def test_bad_models_file_is_one_line_and_exit_nonzero(
    sim: SimulatorThread, tmp_path: Path, name: str, content: bytes | None
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = run_cli({**fal_env(sim), "MODELS_FILE": str(path)}, ["--port", str(free_port())])
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MODELS_FILE" in lines[0] and name in lines[0], result.stderr


def test_a_redis_outage_is_one_line_going_and_one_coming_back(
    sim: SimulatorThread, processes: list[ProxyProcess]
) -> None:
    """With Redis down, its client library logged a line per call and retry, burying the
    one line that matters."""
    redis_server = RedisServer()
    redis_server.start()
    try:
        env = fal_env(sim, API_KEY=API_KEY, RATE_LIMIT_RPM="1000", REDIS_URL=redis_server.url)
        running = start_proxy_process({**env, "LOG_FORMAT": "text", "LOG_LEVEL": "info"})
        processes.append(running)

        def burst() -> None:
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
            key = {"authorization": f"Bearer {API_KEY}"}
            for _ in range(12):
                url = running.base_url + "/v1/chat/completions"
                assert httpx.post(url, json=body, headers=key, timeout=30).status_code == 200

        burst()
        redis_server.stop()
        burst()
        time.sleep(2.5)  # a probe or two while it is down
        burst()
        redis_server.start()
        deadline = time.monotonic() + 10
        while "reachable again" not in running.output():
            assert time.monotonic() < deadline, running.output()[-2000:]
            time.sleep(0.1)
        burst()
    finally:
        redis_server.close()
    lines = [line for line in running.output().splitlines() if "POST /v1/" not in line]
    assert len([line for line in lines if "Redis unreachable" in line]) == 1, lines
    assert len([line for line in lines if "reachable again" in line]) == 1, lines
    chatter = [line for line in lines if "coredis" in line or "Retry attempt" in line]
    assert not chatter, chatter
