"""With WORKERS=2, /metrics reports the whole process group, whichever worker answers."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import httpx

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.chat import MODEL
from ..support.processes import start_proxy_process
from ..support.servers import FAL_KEY

CHAT = f'fal_proxy_requests_total{{model="{MODEL}",route="/v1/chat/completions",status="200"}}'


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, flags=re.MULTILINE)
    assert match, f"{name} not in:\n{text}"
    return float(match.group(1))


def pids_that_answered(output: str) -> set[int]:
    pids = set()
    for line in output.splitlines():
        if line.startswith("{") and '"path":"/v1/chat/completions"' in line:
            pids.add(json.loads(line)["pid"])
    return pids


def test_metrics_add_up_across_workers(
    sim: SimulatorThread, secret_audit: list[str], tmp_path: Path
) -> None:
    env = {"FAL_KEY": FAL_KEY, "FAL_RUN_URL": sim.run_url, "FAL_QUEUE_URL": sim.queue_url}
    # TMPDIR: where the supervisor makes its metrics directory, so that the test can see it.
    running = start_proxy_process(
        {**env, "WORKERS": "2", "LOG_FORMAT": "json", "TMPDIR": str(tmp_path)}
    )
    body = {"model": MODEL, "messages": [{"role": "user", "content": "count me"}]}
    sent = 0
    try:
        # New connections until both workers have answered (the kernel picks the worker).
        while sent < 10 or (len(pids_that_answered(running.output())) < 2 and sent < 300):
            response = httpx.post(running.base_url + "/v1/chat/completions", json=body, timeout=30)
            assert response.status_code == 200
            sent += 1
        assert len(pids_that_answered(running.output())) == 2, "one worker answered everything"
        (metrics_dir,) = tmp_path.glob("fal-openai-proxy-metrics-*")
        scrapes = [httpx.get(running.base_url + "/metrics", timeout=10).text for _ in range(8)]
        for text in scrapes:
            assert sample(text, CHAT) == sent
            assert sample(text, "fal_proxy_workers") == 2
            assert sample(text, "fal_proxy_requests_in_flight") == 0

        # A worker dies: it is replaced, its requests stay counted, its gauges leave the sums.
        os.kill(pids_that_answered(running.output()).pop(), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while running.output().count("Started server process") < 3:
            assert time.monotonic() < deadline, running.output()
            time.sleep(0.1)
        text = httpx.get(running.base_url + "/metrics", timeout=5).text
        assert sample(text, "fal_proxy_workers") == 2, text
        assert sample(text, CHAT) == sent
        assert "restarting it" in running.output()

        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=20) == 0
        assert not metrics_dir.exists(), "the supervisor left its metrics directory"
    finally:
        running.stop()
        secret_audit.append(running.output())
