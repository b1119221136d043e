"""The image's command, run as the image would run it, without a container engine.

No container engine runs on the build machines (deploy/README.md), so these tests read the
Dockerfile's final stage and run its ENTRYPOINT + CMD with its ENV, from an empty working
directory like its WORKDIR, with the image's virtualenv mapped to this one: the start-up refusal
that HOST=0.0.0.0 implies, the HEALTHCHECK command against the live server, and SIGTERM draining
with the server as PID 1 of its own PID namespace, as in a container.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support import dockerfile
from ..support.chat import MODEL
from ..support.processes import REPO, ProxyProcess, free_port, wait_until_healthy
from ..support.servers import API_KEY, FAL_KEY

DOCKERFILE = dockerfile.parse(REPO / "Dockerfile")
IMAGE = DOCKERFILE.final
IMAGE_VENV_BIN = "/opt/venv/bin"
LOCAL_VENV_BIN = str(Path(sys.executable).parent)


def local(path: str) -> str:
    """An image path under its virtualenv -> the same file in this test's virtualenv."""
    return path.replace(IMAGE_VENV_BIN, LOCAL_VENV_BIN, 1)


def image_command() -> list[str]:
    entrypoint = dockerfile.exec_form(IMAGE.last("ENTRYPOINT"))
    cmd = dockerfile.exec_form(IMAGE.last("CMD"))
    return [local(entrypoint[0]), *entrypoint[1:], *cmd]


IMAGE_VOLUME = "/data"  # the image's VOLUME: the SQLite file of the accounts
_VOLUME = Path(tempfile.mkdtemp(prefix="image-volume-"))
atexit.register(shutil.rmtree, _VOLUME, True)


def image_env(**overrides: str) -> dict[str, str]:
    """This machine's environment without keys, the image's ENV on top, then `overrides`;
    the image's volume is a temporary folder here."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "API_KEY"))}
    env = {**base, **IMAGE.env({"PATH": os.environ.get("PATH", "")})}
    env["PATH"] = local(env["PATH"])
    env["DATABASE_URL"] = env["DATABASE_URL"].replace(f"//{IMAGE_VOLUME}/", f"//{_VOLUME}/", 1)
    env.update(overrides)
    return env


def healthcheck_command() -> tuple[list[str], float]:
    options, command = dockerfile.healthcheck(IMAGE.last("HEALTHCHECK"))
    assert command[0] == "python", "the check needs no curl: the image's own python"
    return [sys.executable, *command[1:]], dockerfile.seconds(options["timeout"])


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Empty, like the image's WORKDIR: no `.env` of this checkout is read."""
    with tempfile.TemporaryDirectory(prefix="image-workdir-") as path:
        yield Path(path)


def test_dockerfile_is_the_image_the_deploy_files_expect() -> None:
    assert len(DOCKERFILE.stages) >= 2, "multi-stage: build in one, run in a slim other"
    base = DOCKERFILE.stages[-1].base
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    assert all(stage.base == base for stage in DOCKERFILE.stages), "one base for both stages"
    assert IMAGE.last("USER").split(":")[0] == "10001"  # deploy/k8s runAsUser
    assert IMAGE.last("STOPSIGNAL") == "SIGTERM"
    assert IMAGE.last("EXPOSE") == IMAGE.env()["PORT"] == "3000"
    # The default SQLite file is on the volume, which the image's user owns.
    assert IMAGE.last("VOLUME") == f'["{IMAGE_VOLUME}"]'
    assert IMAGE.env()["DATABASE_URL"] == f"sqlite:///{IMAGE_VOLUME}/fal-openai-proxy.db"
    assert any(f"chown 10001:10001 {IMAGE_VOLUME}" in run for run in IMAGE.all("RUN"))
    assert IMAGE.env()["HOST"] == "0.0.0.0"
    assert dockerfile.exec_form(IMAGE.last("ENTRYPOINT"))[0].endswith("/fal-openai-proxy")
    assert "/healthz" in " ".join(healthcheck_command()[0])
    # No secret is baked in: keys come from the orchestrator.
    for stage in DOCKERFILE.stages:
        assert not {"FAL_KEY", "API_KEY"} & set(stage.env()), "a key in the image's ENV"
        assert not [a for kw, a in stage.instructions if kw in ("ARG", "ENV") and "KEY" in a]
    # .dockerignore shuts out everything (a developer's .env, .venv, .git) but what COPY takes.
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    admitted = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {
        source.rstrip("/")
        for stage in DOCKERFILE.stages
        for args in stage.all("COPY")
        if not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert copied == admitted


def test_image_refuses_to_start_with_fal_key_but_no_api_key(
    sim: SimulatorThread, workdir: Path, secret_audit: list[str]
) -> None:
    """HOST=0.0.0.0 in the image: secure by default, a FAL_KEY alone is refused at start."""
    env = image_env(PORT=str(free_port()), FAL_KEY=FAL_KEY, FAL_RUN_URL=sim.run_url)
    assert env["HOST"] == "0.0.0.0"
    result = subprocess.run(
        image_command(), env=env, cwd=workdir, capture_output=True, text=True, timeout=30
    )
    secret_audit.append(result.stdout + result.stderr)
    assert result.returncode != 0
    assert "API_KEY" in result.stderr and "ALLOW_UNAUTHENTICATED" in result.stderr


def _pid1_possible() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--kill-child", "true"], capture_output=True, timeout=10
    )
    return probe.returncode == 0


def _child_pid(parent: int, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    children = Path(f"/proc/{parent}/task/{parent}/children")
    while time.monotonic() < deadline:
        pids = children.read_text().split()
        if pids:
            return int(pids[0])
        time.sleep(0.01)
    raise AssertionError("unshare started no child")


def _namespace_pid(pid: int) -> int:
    """The process's pid inside its innermost PID namespace (the last NSpid field)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid")


def _stream(base_url: str, text: str, lines: list[str]) -> threading.Thread:
    def read() -> None:
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": text}]}
        headers = {"Authorization": f"Bearer {API_KEY}"}
        url = base_url + "/v1/chat/completions"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
            lines.extend(line for line in response.iter_lines() if line)

    thread = threading.Thread(target=read)
    thread.start()
    return thread


@pytest.mark.skipif(not _pid1_possible(), reason="unshare --pid is not permitted here")
def test_image_command_as_pid1_passes_its_healthcheck_and_drains_on_sigterm(
    sim: SimulatorThread, workdir: Path, secret_audit: list[str]
) -> None:
    port = free_port()
    # HOST overridden to loopback for the test; everything else is the image's.
    env = image_env(
        HOST="127.0.0.1",
        PORT=str(port),
        FAL_KEY=FAL_KEY,
        API_KEY=API_KEY,
        FAL_RUN_URL=sim.run_url,
        FAL_QUEUE_URL=sim.queue_url,
        DRAIN_TIMEOUT="10",
    )
    log = tempfile.NamedTemporaryFile(prefix="image-", suffix=".log", delete=False)  # noqa: SIM115
    # A new PID namespace: the server is PID 1 there, where the kernel drops every signal the
    # process has no handler for, as in a container with an exec-form ENTRYPOINT.
    process = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--", *image_command()],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    running = ProxyProcess(process, port, Path(log.name))
    try:
        wait_until_healthy(running)
        server_pid = _child_pid(process.pid)
        assert _namespace_pid(server_pid) == 1

        check, check_timeout = healthcheck_command()
        healthy = subprocess.run(check, env=env, capture_output=True, timeout=check_timeout)
        assert healthy.returncode == 0, healthy.stderr

        lines: list[str] = []
        reader = _stream(running.base_url, 'long [[sim {"events": 6, "interval_ms": 250}]]', lines)
        deadline = time.monotonic() + 5
        while not any('"content":"Simulated' in li for li in lines) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(server_pid, signal.SIGTERM)  # what `docker stop` sends (STOPSIGNAL)
        time.sleep(0.2)
        assert httpx.get(running.base_url + "/readyz", timeout=2).status_code == 503
        # Liveness stays green while draining: the orchestrator must not kill a draining server.
        during = subprocess.run(check, env=env, capture_output=True, timeout=check_timeout)
        assert during.returncode == 0
        reader.join(timeout=15)
        assert lines[-1] == "data: [DONE]"  # the in-flight stream finished
        assert "".join(lines).count('"finish_reason":"stop"') == 1
        assert process.wait(timeout=15) == 0  # unshare passes on the server's exit status

        # The same check fails once the server is gone, so a dead container is marked unhealthy.
        after = subprocess.run(check, env=env, capture_output=True, timeout=check_timeout)
        assert after.returncode != 0
    finally:
        running.stop()
        secret_audit.append(running.output())
