"""Load: 500 concurrent streams and 2,000 non-stream requests through one proxy process.

Every answer must arrive whole and be the answer to its own question: none lost, none mixed
up. Speed and memory are the benchmark's business (`make bench`), not this test's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest

from ..support.chat import MODEL
from ..support.processes import (
    ProxyProcess,
    SimulatorProcess,
    raise_open_file_limit,
    start_proxy_process,
    start_simulator_process,
)
from ..support.servers import FAL_KEY

STREAMS = 500
REQUESTS = 2000
TIMEOUT = aiohttp.ClientTimeout(total=120)


@pytest.fixture(scope="module")
def loaded_proxy(secret_audit: list[str]) -> Iterator[ProxyProcess]:
    raise_open_file_limit()
    simulator: SimulatorProcess = start_simulator_process("--interval-ms", "20", "--events", "5")
    env = {
        "FAL_KEY": FAL_KEY,
        "FAL_RUN_URL": simulator.run_url,
        "FAL_QUEUE_URL": simulator.queue_url,
        "FAL_KEY_CONCURRENCY": "4000",
        "LOG_LEVEL": "warning",
    }
    running = start_proxy_process(env)
    yield running
    running.stop()
    simulator.stop()
    secret_audit.append(running.output())


def body(question: str, stream: bool) -> dict[str, object]:
    return {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": question}]}


async def one_stream(client: aiohttp.ClientSession, url: str, index: int) -> str:
    question = f"stream question number {index}"
    parts: list[str] = []
    async with client.post(url, json=body(question, True)) as response:
        assert response.status == 200, await response.text()
        lines = [line.decode().strip() async for line in response.content]
    lines = [line for line in lines if line]
    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        chunk = json.loads(line.removeprefix("data: "))
        assert "error" not in chunk, chunk
        parts += [c["delta"].get("content") or "" for c in chunk["choices"]]
    assert "".join(parts) == f"Simulated answer to: {question}"
    return question


async def one_request(client: aiohttp.ClientSession, url: str, index: int) -> str:
    question = f"plain question number {index}"
    async with client.post(url, json=body(question, False)) as response:
        assert response.status == 200, await response.text()
        content = (await response.json())["choices"][0]["message"]["content"]
    assert content == f"Simulated answer to: {question}"
    return question


async def test_500_concurrent_streams(loaded_proxy: ProxyProcess) -> None:
    url = loaded_proxy.base_url + "/v1/chat/completions"
    # aiohttp, not httpx: httpx's pool is the bottleneck at this concurrency.
    connector = aiohttp.TCPConnector(limit=STREAMS + 50)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as client:
        done = await asyncio.gather(*(one_stream(client, url, i) for i in range(STREAMS)))
    assert len(set(done)) == STREAMS


async def test_2000_non_stream_requests(loaded_proxy: ProxyProcess) -> None:
    url = loaded_proxy.base_url + "/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=250)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as client:
        done = await asyncio.gather(*(one_request(client, url, i) for i in range(REQUESTS)))
    assert len(set(done)) == REQUESTS
