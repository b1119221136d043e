"""One proxy across replicas: Redis, the simulator and three proxy processes, each on its own
port, with traffic sent round-robin. The tests run in order on one cluster: the shared rate
limit, the account's key limit under load, SIGTERM of one replica mid-load, Redis stopped
mid-load, and a refused key benched everywhere.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from fal_openai_proxy.fal.cluster import key_id
from fal_openai_proxy.simulator.server import SimulatorThread
from fal_openai_proxy.store.redis import NAMESPACE

from ..support.chat import MODEL
from ..support.processes import ProxyProcess, start_proxy_process
from ..support.redis import RedisServer
from ..support.servers import API_KEY, FAL_KEY, FAL_KEY_2

REPLICAS = 3
ACCOUNT_LIMIT = 3  # fal's concurrency limit per key (account), played by the simulator
RPM = 10
# Load clients each have their own API key, so that RATE_LIMIT_RPM only bites the one test
# that is about it.
CLIENTS = [f"cluster-client-{n:03d}" for n in range(120)]


class Cluster:
    def __init__(self, redis_server: RedisServer, sim: SimulatorThread) -> None:
        self.redis = redis_server
        self.env = {
            "FAL_KEY": f"{FAL_KEY},{FAL_KEY_2}",
            "FAL_RUN_URL": sim.run_url,
            "FAL_QUEUE_URL": sim.queue_url,
            "REDIS_URL": redis_server.url,
            "FAL_KEY_CONCURRENCY": str(ACCOUNT_LIMIT),  # with Redis: for the whole cluster
            "API_KEY": ",".join([API_KEY, *CLIENTS]),
            "RATE_LIMIT_RPM": str(RPM),
            "DRAIN_TIMEOUT": "1",
            "LOG_FORMAT": "json",
        }
        self.replicas: list[ProxyProcess] = []
        self.stopped: list[ProxyProcess] = []

    def start_replica(self) -> ProxyProcess:
        replica = start_proxy_process(self.env)
        self.replicas.append(replica)
        return replica

    def metric(self, replica: ProxyProcess, line: str) -> float | None:
        text = httpx.get(replica.base_url + "/metrics", timeout=10).text
        match = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
        return float(match.group(1)) if match else None

    def wait_for_metric(self, line: str, value: float, timeout: float = 10) -> None:
        """Until every replica reports `line` at `value` (their state refreshes each second)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = [self.metric(r, line) for r in self.replicas]
            if all(v == value for v in seen):
                return
            assert time.monotonic() < deadline, f"{line}: {seen}, not {value}"
            time.sleep(0.1)

    def wait_for_no_leases(self, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while self.leases() != [0, 0]:
            assert time.monotonic() < deadline, self.leases()
            time.sleep(0.1)

    def leases(self) -> list[int]:
        """Slots held in Redis per key, as the Lua scripts count them."""
        client = redis.Redis.from_url(self.redis.url)
        try:
            return [
                int(client.zcard(f"{NAMESPACE}:key:{key_id(key)}:leases"))
                for key in (FAL_KEY, FAL_KEY_2)
            ]
        finally:
            client.close()


@pytest.fixture(scope="module")
def cluster(sim: SimulatorThread, secret_audit: list[str]) -> Iterator[Cluster]:
    server = RedisServer()
    server.start()
    running = Cluster(server, sim)
    try:
        for _ in range(REPLICAS):
            running.start_replica()
        yield running
    finally:
        for replica in running.replicas + running.stopped:
            replica.stop()
            secret_audit.append(replica.output())
        server.close()


@pytest.fixture
def account(sim: SimulatorThread) -> Iterator[SimulatorThread]:
    sim.state.config.key_concurrency = ACCOUNT_LIMIT
    sim.state.key_peak.clear()
    sim.state.key_refused.clear()
    yield sim
    sim.state.config.key_concurrency = None
    sim.state.config.forbidden_keys = set()


def ask(text: str, **directives: Any) -> str:
    return f"{text} [[sim {json.dumps(directives)}]]" if directives else text


async def stream_chat(
    client: httpx.AsyncClient,
    replica: ProxyProcess,
    api_key: str,
    text: str,
    started: asyncio.Event | None = None,
) -> tuple[int, str, str | None]:
    """One streamed chat: the status, the content, and the in-band error code if any (or
    "no_done" when the stream ended without `data: [DONE]`)."""
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": text}]}
    headers = {"Authorization": f"Bearer {api_key}"}
    url = replica.base_url + "/v1/chat/completions"
    async with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, "", response.json()["error"]["code"]
        content, error = "", None
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                return 200, content, error
            chunk = json.loads(line[6:])
            if "error" in chunk:
                error = chunk["error"]["code"] or chunk["error"]["type"]
                continue
            for choice in chunk["choices"]:
                content += choice["delta"].get("content") or ""
            if started is not None and content:
                started.set()
        return 200, content, "no_done"


def answer(text: str) -> str:
    return f"Simulated answer to: {text}"


async def round_robin(
    cluster: Cluster, clients: list[str], text: str, count: int, **directives: Any
) -> list[tuple[int, str, str | None]]:
    async with httpx.AsyncClient(timeout=60) as client:
        calls = [
            stream_chat(
                client,
                cluster.replicas[i % len(cluster.replicas)],
                clients[i % len(clients)],
                ask(text, **directives),
            )
            for i in range(count)
        ]
        return await asyncio.gather(*calls)


def test_the_rate_limit_holds_across_replicas(cluster: Cluster) -> None:
    statuses = []
    for i in range(RPM + 5):
        replica = cluster.replicas[i % REPLICAS]
        response = httpx.post(
            replica.base_url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": f"limit {i}"}]},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        statuses.append(response.status_code)
    assert statuses == [200] * RPM + [429] * 5


async def test_the_account_limit_holds_across_replicas(
    cluster: Cluster, account: SimulatorThread
) -> None:
    # Each process alone would allow 3 per key, 9 in all: only the shared count keeps fal's
    # account at 3.
    results = await round_robin(
        cluster, CLIENTS[:30], "load", 36, latency_ms=50, events=3, interval_ms=30
    )
    assert results == [(200, answer("load"), None)] * 36
    assert sorted(account.state.key_peak) == sorted([FAL_KEY, FAL_KEY_2])
    assert all(peak <= ACCOUNT_LIMIT for peak in account.state.key_peak.values())
    assert max(account.state.key_peak.values()) == ACCOUNT_LIMIT  # the load did reach it
    assert account.state.key_refused == {}
    assert cluster.leases() == [0, 0]


async def test_sigterm_ends_only_that_replicas_requests(
    cluster: Cluster, account: SimulatorThread
) -> None:
    victim = cluster.replicas[0]
    slow = {"events": 60, "interval_ms": 50}  # 3 s
    started = [asyncio.Event() for _ in range(6)]
    async with httpx.AsyncClient(timeout=60) as client:
        calls = [
            asyncio.create_task(
                stream_chat(
                    client,
                    cluster.replicas[i % REPLICAS],
                    CLIENTS[40 + i],
                    ask("drain", **slow),
                    started[i],
                )
            )
            for i in range(6)
        ]
        async with asyncio.timeout(20):
            await asyncio.gather(*(event.wait() for event in started))
        victim.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*calls)
    assert await asyncio.to_thread(victim.process.wait, 20) == 0
    cluster.replicas.remove(victim)
    cluster.stopped.append(victim)

    for i, (status, content, error) in enumerate(results):
        assert status == 200
        if i % REPLICAS == 0:  # the victim's: a completed answer or a clear in-band error
            assert (content, error) == (answer("drain"), None) or error == "server_shutting_down"
        else:  # the others': untouched
            assert (content, error) == (answer("drain"), None)
    assert account.state.key_refused == {}
    # The stopped replica holds no slot: released, or given back as it left.
    cluster.wait_for_no_leases()
    cluster.start_replica()  # a replacement joins


async def test_redis_stopped_mid_load_every_request_completes(cluster: Cluster) -> None:
    async def load() -> list[tuple[int, str, str | None]]:
        return await round_robin(
            cluster, CLIENTS[50:80], "outage", 45, latency_ms=100, events=5, interval_ms=40
        )

    running = asyncio.create_task(load())
    await asyncio.sleep(0.3)
    cluster.redis.stop()
    results = await running
    assert results == [(200, answer("outage"), None)] * 45
    # And after: still serving, on per-process state.
    assert (
        await round_robin(cluster, CLIENTS[80:90], "alone", 9) == [(200, answer("alone"), None)] * 9
    )
    cluster.wait_for_metric("fal_proxy_redis_up", 0.0)
    for replica in cluster.replicas:
        errors = cluster.metric(replica, "fal_proxy_redis_errors_total")
        assert errors is not None and errors >= 1
        assert replica.output().count("Redis unreachable") == 1  # logged once

    cluster.redis.start()
    cluster.wait_for_metric("fal_proxy_redis_up", 1.0)
    for replica in cluster.replicas:
        assert "Redis reachable again" in replica.output()


async def test_a_refused_key_is_benched_everywhere_after_one_refusal(
    cluster: Cluster, account: SimulatorThread, sim_log: Callable[..., list[dict[str, Any]]]
) -> None:
    cluster.wait_for_metric("fal_proxy_redis_up", 1.0)
    account.state.config.forbidden_keys = {FAL_KEY_2}
    async with httpx.AsyncClient(timeout=60) as client:
        # A long stream holds key 0, so that the least-loaded key is key 1 for the next one.
        holder_started = asyncio.Event()
        holder = asyncio.create_task(
            stream_chat(
                client, cluster.replicas[0], CLIENTS[100],
                ask("holder", events=40, interval_ms=50), holder_started,
            )
        )  # fmt: skip
        async with asyncio.timeout(20):
            await holder_started.wait()
        results = [
            await stream_chat(client, cluster.replicas[(1 + i) % REPLICAS], CLIENTS[101 + i], "x")
            for i in range(6)
        ]
        assert await holder == (200, answer("holder"), None)
    # The first request met the refusal and failed over; no replica tried key 1 again.
    assert results == [(200, answer("x"), None)] * 6
    assert len([r for r in sim_log() if r.get("key") == FAL_KEY_2]) == 1
    cluster.wait_for_metric('fal_proxy_key_healthy{key_index="1"}', 0.0)
    cluster.wait_for_metric('fal_proxy_key_healthy{key_index="0"}', 1.0)
