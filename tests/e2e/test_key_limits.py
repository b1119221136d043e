"""FAL_KEY_CONCURRENCY: `auto` learns fal's account limit from its 429s; a number is a fixed cap.

The simulator plays an account with a concurrency limit (`key_concurrency`): direct and /stream
calls over it get a 429, as at fal (docs/fal-protocol.md §5).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.chat import MODEL, ask
from ..support.servers import FAL_KEY_2, RunningProxy

ACCOUNT_LIMIT = 4
CLIENTS = 32
# 50 ms before fal's first event, then three events 10 ms apart.
SLOW = ask('limits [[sim {"latency_ms": 50, "events": 3, "interval_ms": 10}]]')


@pytest.fixture
def account_limit(sim: SimulatorThread) -> Iterator[None]:
    sim.state.config.key_concurrency = ACCOUNT_LIMIT
    sim.state.key_peak.clear()
    sim.state.key_refused.clear()
    yield
    sim.state.config.key_concurrency = None


async def stream_all(client: openai.AsyncOpenAI, count: int) -> list[BaseException | None]:
    """`count` concurrent streams; each one's failure, or None."""

    async def one() -> None:
        stream = await client.chat.completions.create(model=MODEL, messages=SLOW, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Simulated answer to: limits"

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


def key_limit(running: RunningProxy) -> float:
    text = httpx.get(running.base_url + "/metrics").text
    match = re.search(r'^fal_proxy_key_concurrency_limit\{key_index="0"\} (\S+)$', text, re.M)
    assert match, text
    return float(match.group(1))


@pytest.mark.usefixtures("account_limit")
async def test_auto_learns_the_account_limit(
    sim: SimulatorThread,
    proxy_factory: Callable[..., RunningProxy],
    make_async_client: Callable[..., openai.AsyncOpenAI],
) -> None:
    running = proxy_factory(fal_key=FAL_KEY_2)  # FAL_KEY_CONCURRENCY defaults to auto
    client = make_async_client(running)  # max_retries=0: every 429 would be seen here
    assert key_limit(running) == float("inf")  # no limit before fal's first 429

    # The first round overruns fal at once; the proxy lowers the key's limit and retries.
    assert await stream_all(client, CLIENTS) == [None] * CLIENTS
    first_refused = sim.state.key_refused.get(FAL_KEY_2, 0)
    assert first_refused > 0
    learned = key_limit(running)
    assert 1 <= learned <= ACCOUNT_LIMIT + 2

    # Once learned: still no client-visible error, and only the probes just above fal's limit
    # are refused (about one per window of successes; 4-5 in practice, 38-67 while learning).
    sim.state.key_refused.clear()
    assert await stream_all(client, CLIENTS) == [None] * CLIENTS
    refused = sim.state.key_refused.get(FAL_KEY_2, 0)
    assert refused <= CLIENTS // 4
    assert refused < first_refused
    assert 2 <= key_limit(running) <= ACCOUNT_LIMIT + 2


@pytest.mark.usefixtures("account_limit")
async def test_a_number_is_a_fixed_cap(
    sim: SimulatorThread,
    proxy_factory: Callable[..., RunningProxy],
    make_async_client: Callable[..., openai.AsyncOpenAI],
) -> None:
    running = proxy_factory(fal_key=FAL_KEY_2, fal_key_concurrency=3)
    client = make_async_client(running)
    assert key_limit(running) == 3
    assert await stream_all(client, 12) == [None] * 12
    assert sim.state.key_peak[FAL_KEY_2] == 3  # never more than the cap at fal
    assert sim.state.key_refused.get(FAL_KEY_2, 0) == 0
    assert key_limit(running) == 3
