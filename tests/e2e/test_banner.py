"""The start banner says what a user must do next, and nothing before the port is ours."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.processes import ProxyProcess, run_cli, start_proxy_process
from ..support.servers import API_KEY, API_KEY_2, FAL_KEY


@pytest.fixture
def processes(secret_audit: list[str]) -> Iterator[list[ProxyProcess]]:
    started: list[ProxyProcess] = []
    yield started
    for running in started:
        running.stop()
        secret_audit.append(running.output())


def test_simulating_without_fal_key_says_to_set_it(processes: list[ProxyProcess]) -> None:
    # What `make run` starts when FAL_KEY is unset: setting it is all the user has to do.
    running = start_proxy_process({}, args=["--simulate"])
    processes.append(running)
    output = running.output()
    assert "SIMULATED" in output
    assert "Set FAL_KEY (in the environment or .env) to use fal." in output
    assert "drop --simulate" not in output


def test_simulating_with_fal_key_says_it_is_unused(processes: list[ProxyProcess]) -> None:
    running = start_proxy_process({"FAL_KEY": FAL_KEY}, args=["--simulate"])
    processes.append(running)
    assert "FAL_KEY is set but unused: drop --simulate to use fal." in running.output()


def test_with_api_key_the_banner_says_clients_must_send_one(
    sim: SimulatorThread, processes: list[ProxyProcess]
) -> None:
    env = {"FAL_KEY": FAL_KEY, "API_KEY": f"{API_KEY},{API_KEY_2}",
           "FAL_RUN_URL": sim.run_url, "FAL_QUEUE_URL": sim.queue_url}  # fmt: skip
    running = start_proxy_process(env)
    processes.append(running)
    output = running.output()
    assert "API_KEY is set: clients must send `Authorization: Bearer <key>`" in output
    assert "2 key(s)" in output


def test_without_api_key_the_banner_asks_for_none(
    sim: SimulatorThread, processes: list[ProxyProcess]
) -> None:
    env = {"FAL_KEY": FAL_KEY, "FAL_RUN_URL": sim.run_url, "FAL_QUEUE_URL": sim.queue_url}
    running = start_proxy_process(env)
    processes.append(running)
    assert "clients must send" not in running.output()


@pytest.mark.parametrize("args", [[], ["--simulate"], ["--workers", "2"]])
def test_a_busy_port_fails_before_the_banner(sim: SimulatorThread, args: list[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"FAL_KEY": FAL_KEY, "FAL_RUN_URL": sim.run_url, "FAL_QUEUE_URL": sim.queue_url}
        result = run_cli(env, ["--port", str(port), *args])
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Address already in use" in result.stderr
    assert "point OpenAI clients here" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
