"""Shared fixtures: the fal simulator and proxies as real servers, clients whose every
response is checked against OpenAI's schemas, and the audit for leaked secrets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from fal_openai_proxy.base.logs import JsonFormatter
from fal_openai_proxy.simulator import SimulatorConfig
from fal_openai_proxy.simulator.server import SimulatorThread, start_simulator_thread

from .support.anthropic_schema import AsyncValidatingTransport2, ValidatingTransport2
from .support.postgres import PostgresServer
from .support.schema import AsyncValidatingTransport, Recorder, ValidatingTransport, _Tap
from .support.servers import (
    ADMIN_KEY,
    API_KEY,
    API_KEY_2,
    CLIENT_FAL_KEY,
    FAL_KEY,
    FAL_KEY_2,
    SECRETS,
    RunningProxy,
    fresh_sqlite_url,
    proxy_settings,
    start_proxy,
)


class CapturedLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def captured_logs() -> Iterator[CapturedLogs]:
    handler = CapturedLogs()
    logger = logging.getLogger("fal_openai_proxy")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)
    logger.setLevel(previous)


@pytest.fixture(scope="session", autouse=True)
def secret_audit(recorder: Recorder, captured_logs: CapturedLogs) -> Iterator[list[str]]:
    """After the whole suite: no key in any response body, header or log line."""
    extra_output: list[str] = []  # subprocess output, added by the tests that run them
    yield extra_output
    haystacks = [b.decode("utf-8", "replace") for b in recorder.bodies]
    haystacks += captured_logs.lines + extra_output
    secrets = (*SECRETS, *recorder.virtual_keys)
    leaks = [(s, h[:200]) for h in haystacks for s in secrets if s in h]
    assert not leaks, f"secrets leaked: {leaks[:5]}"


@pytest.fixture(autouse=True)
def schema_guard(recorder: Recorder) -> Iterator[None]:
    """Every body and chunk a test received validates against OpenAI's schemas."""
    before = len(recorder.failures)
    yield
    new = recorder.failures[before:]
    assert not new, "responses broke OpenAI's schemas:\n" + "\n".join(new)


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorThread]:
    config = SimulatorConfig(keys={FAL_KEY, FAL_KEY_2, CLIENT_FAL_KEY}, events=6)
    thread = start_simulator_thread(config)
    yield thread
    thread.stop()


@pytest.fixture
def sim_log(sim: SimulatorThread) -> Callable[..., list[dict[str, Any]]]:
    """The simulator's records since this test began, optionally of one kind."""
    start = len(sim.state.log)

    def records(kind: str | None = None) -> list[dict[str, Any]]:
        new = sim.state.log[start:]
        return [r for r in new if kind is None or r["kind"] == kind]

    return records


@pytest.fixture(scope="session")
def proxy_factory(sim: SimulatorThread) -> Iterator[Callable[..., RunningProxy]]:
    started: list[RunningProxy] = []

    def start(**overrides: Any) -> RunningProxy:
        running = start_proxy(proxy_settings(sim, **overrides))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def proxy(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    """The default proxy: one server fal key, no client auth."""
    return proxy_factory()


@pytest.fixture(scope="session")
def http(recorder: Recorder) -> Iterator[httpx.Client]:
    with httpx.Client(transport=ValidatingTransport(recorder), timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def make_client(recorder: Recorder) -> Iterator[Callable[..., openai.OpenAI]]:
    made: list[openai.OpenAI] = []

    def make(running: RunningProxy, api_key: str = "unused", **kwargs: Any) -> openai.OpenAI:
        http_client = httpx.Client(transport=ValidatingTransport(recorder), timeout=30)
        client = openai.OpenAI(
            base_url=running.v1, api_key=api_key, max_retries=0, http_client=http_client, **kwargs
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
async def make_async_client(recorder: Recorder) -> AsyncIterator[Callable[..., openai.AsyncOpenAI]]:
    made: list[openai.AsyncOpenAI] = []

    def make(running: RunningProxy, api_key: str = "unused", **kwargs: Any) -> openai.AsyncOpenAI:
        http_client = httpx.AsyncClient(transport=AsyncValidatingTransport(recorder), timeout=30)
        client = openai.AsyncOpenAI(
            base_url=running.v1, api_key=api_key, max_retries=0, http_client=http_client, **kwargs
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway Postgres server for the session (skips, or fails under CI, without one)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty accounts database on each engine in turn."""
    if request.param == "sqlite":
        return fresh_sqlite_url()
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture(scope="session")
def make_anthropic(recorder: Recorder) -> Iterator[Callable[..., anthropic.Anthropic]]:
    """anthropic SDK clients whose every response is checked (tests/support/anthropic_schema.py)."""
    made: list[anthropic.Anthropic] = []

    def make(running: RunningProxy, api_key: str = "unused", **kwargs: Any) -> anthropic.Anthropic:
        http_client = httpx2.Client(transport=ValidatingTransport2(recorder, _Tap), timeout=30)
        client = anthropic.Anthropic(
            base_url=running.base_url, api_key=api_key, max_retries=0, http_client=http_client,
            **kwargs,
        )  # fmt: skip
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
async def make_async_anthropic(
    recorder: Recorder,
) -> AsyncIterator[Callable[..., anthropic.AsyncAnthropic]]:
    made: list[anthropic.AsyncAnthropic] = []

    def make(
        running: RunningProxy, api_key: str = "unused", **kwargs: Any
    ) -> anthropic.AsyncAnthropic:
        transport = AsyncValidatingTransport2(recorder, _Tap)
        http_client = httpx2.AsyncClient(transport=transport, timeout=30)
        client = anthropic.AsyncAnthropic(
            base_url=running.base_url, api_key=api_key, max_retries=0, http_client=http_client,
            **kwargs,
        )  # fmt: skip
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def client(proxy: RunningProxy, make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client(proxy)


@pytest.fixture
def aclient(
    proxy: RunningProxy, make_async_client: Callable[..., openai.AsyncOpenAI]
) -> openai.AsyncOpenAI:
    return make_async_client(proxy)


__all__ = ["ADMIN_KEY", "API_KEY", "API_KEY_2", "CLIENT_FAL_KEY", "FAL_KEY", "FAL_KEY_2"]
