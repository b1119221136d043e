"""The key pool shared through a real redis-server: two pools in this process stand for two
replicas (each with its own connection and replica id). The multi-process version, through
the proxy's HTTP API, is test_cluster.py."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio

from fal_openai_proxy.base.metrics import Metrics
from fal_openai_proxy.fal.cluster import ClusterKeys, key_id
from fal_openai_proxy.fal.errors import KeysUnavailable
from fal_openai_proxy.fal.keys import DECREASE, MAX_LIMIT, KeyPool
from fal_openai_proxy.store.redis import NAMESPACE, RedisStore

from ..support.redis import RedisServer

KEYS = ["shared-test-key-a-0c1d", "shared-test-key-b-9e2f"]


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
async def flushed(redis_server: RedisServer) -> None:
    if redis_server.process is None:
        redis_server.start()
    client = redis.asyncio.Redis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()


Replica = tuple[KeyPool, RedisStore, Metrics]


@pytest.fixture
async def replicas(
    redis_server: RedisServer, flushed: None
) -> AsyncIterator[Callable[..., Replica]]:
    made: list[RedisStore] = []

    def make(
        cap: int | None = None, keys: list[str] = KEYS, lease_ttl: float = 30.0, max_wait=0.5
    ) -> Replica:
        metrics = Metrics(multiprocess=False)
        store = RedisStore(redis_server.url, metrics=metrics, probe_interval=0.2)
        cluster = ClusterKeys(
            store, keys, cap=cap, decrease=DECREASE, max_limit=MAX_LIMIT, lease_ttl=lease_ttl
        )
        pool = KeyPool(
            keys,
            concurrency=cap,
            max_wait=max_wait,
            auth_cooldown=60,
            rate_limit_cooldown=5,
            cluster=cluster,
        )
        made.append(store)
        return pool, store, metrics

    yield make
    for store in made:
        await store.close()


async def test_a_fixed_cap_holds_across_replicas(replicas: Callable[..., Replica]) -> None:
    (a, a_store, _), (b, b_store, _) = (
        replicas(cap=2, keys=KEYS[:1]),
        replicas(cap=2, keys=KEYS[:1]),
    )
    await a_store.start()
    await b_store.start()
    first, second = await a.acquire(), await a.acquire()
    assert first.token and second.token  # leased in Redis
    with pytest.raises(KeysUnavailable) as refused:
        await b.acquire()  # the account's two slots are taken on the other replica
    assert refused.value.reason == "busy"

    waiting = asyncio.create_task(b.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    first.release()  # on replica a: replica b's poll finds the slot
    third = await asyncio.wait_for(waiting, 2)
    assert third.token
    assert (a.in_flight(0), b.in_flight(0)) == (1, 1)
    second.release()
    third.release()


async def test_least_loaded_is_counted_across_replicas(replicas: Callable[..., Replica]) -> None:
    (a, a_store, _), (b, b_store, _) = replicas(), replicas()
    await a_store.start()
    await b_store.start()
    on_a = await a.acquire()
    on_b = await b.acquire()  # key 0 has one lease (on a): b takes key 1
    assert (on_a.index, on_b.index) == (0, 1)
    on_a.release()
    on_b.release()


async def test_a_429_cuts_the_learned_limit_for_every_replica(
    replicas: Callable[..., Replica],
) -> None:
    (a, a_store, _), (b, b_store, _) = replicas(keys=KEYS[:1]), replicas(keys=KEYS[:1])
    await a_store.start()
    await b_store.start()
    leases = [await a.acquire() for _ in range(3)] + [await b.acquire() for _ in range(2)]
    assert a.limit(0) is None and b.limit(0) is None  # no 429 yet: no limit
    leases[0].release()
    a.mark_rate_limited(0, None)  # 5 were in flight: the limit becomes floor(5 * 0.7) = 3
    leases[1].release()
    a.mark_rate_limited(0, None)  # the same congestion event: no second cut
    await asyncio.sleep(0.1)
    assert a.limit(0) == 3
    for lease in leases[2:]:
        lease.release()
    await b_store._run_ticks()  # what b learns within a second, at its next tick
    assert b.limit(0) == 3
    # Cluster-wide: three leases in all, whichever replica takes them.
    held = [await a.acquire(), await b.acquire(), await b.acquire()]
    with pytest.raises(KeysUnavailable):
        await a.acquire()
    for lease in held:
        lease.release()


async def test_a_refused_key_is_benched_on_every_replica(
    replicas: Callable[..., Replica],
) -> None:
    (a, a_store, _), (b, b_store, _) = replicas(), replicas()
    await a_store.start()
    await b_store.start()
    lease = await a.acquire()
    assert lease.index == 0
    lease.release()
    a.mark_refused(0)
    await asyncio.sleep(0.1)
    for _ in range(3):  # replica b never uses key 0 again, and says it is out
        other = await b.acquire()
        assert other.index == 1
        other.release()
    assert not b.is_healthy(0) and b.is_healthy(1)


async def test_a_dead_replicas_leases_expire(replicas: Callable[..., Replica]) -> None:
    dead, dead_store, _ = replicas(cap=1, keys=KEYS[:1], lease_ttl=0.5)
    live, live_store, _ = replicas(cap=1, keys=KEYS[:1], max_wait=3)
    await dead_store.start()
    await live_store.start()
    await dead.acquire()  # never released, never renewed: the replica "died"
    started = asyncio.get_running_loop().time()
    lease = await live.acquire()
    assert 0.3 < asyncio.get_running_loop().time() - started < 2.5
    lease.release()


async def test_redis_down_falls_back_and_rejoins(
    redis_server: RedisServer, replicas: Callable[..., Replica], caplog: pytest.LogCaptureFixture
) -> None:
    pool, store, metrics = replicas(cap=4, keys=KEYS[:1])
    await store.start()
    assert store.up
    held = await pool.acquire()
    assert held.token is not None
    caplog.set_level(logging.INFO, logger="fal_openai_proxy.store.redis")

    redis_server.stop()
    leases = [await pool.acquire() for _ in range(3)]  # never an error
    assert not store.up
    assert [lease.token for lease in leases] == [None] * 3  # per-process state
    held.release()  # a lease taken in Redis, released while it is down: no error
    for lease in leases:
        lease.release()
    await asyncio.sleep(0.05)
    rendered = metrics.render().decode()
    assert "fal_proxy_redis_up 0.0" in rendered
    errors = re.search(r"^fal_proxy_redis_errors_total (\S+)$", rendered, re.M)
    assert errors and float(errors.group(1)) >= 1
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1 and down[0].levelno == logging.WARNING

    redis_server.start()
    for _ in range(200):  # the probe runs every 0.2 s here
        if store.up:
            break
        await asyncio.sleep(0.05)
    lease = await pool.acquire()
    assert lease.token is not None  # shared again
    lease.release()
    assert "fal_proxy_redis_up 1.0" in metrics.render().decode()
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    assert [r for r in caplog.records if "reachable again" in r.getMessage()]


async def test_keys_are_never_stored(
    redis_server: RedisServer, replicas: Callable[..., Replica]
) -> None:
    pool, store, _ = replicas()
    await store.start()
    lease = await pool.acquire()
    pool.release(lease.index, lease.epoch, lease.token)
    pool.mark_refused(1)
    await asyncio.sleep(0.1)
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    names = [name async for name in client.scan_iter("*")]
    dump = " ".join(names)
    for name in names:
        kind = await client.type(name)
        if kind == "string":
            dump += " " + str(await client.get(name))
        elif kind == "hash":
            dump += " " + str(await client.hgetall(name))
        elif kind == "zset":
            dump += " " + str(await client.zrange(name, 0, -1))
    await client.aclose()
    assert key_id(KEYS[1]) in dump
    assert not [key for key in KEYS if key in dump]


async def test_json_values_and_the_leader_lock(replicas: Callable[..., Replica]) -> None:
    (_, a, _), (_, b, _) = replicas(), replicas()
    await a.start()
    await b.start()
    assert await a.get_json("models") is None
    assert await a.set_json("models", {"data": [{"id": "m"}]}, ttl=5)
    assert await b.get_json("models") == {"data": [{"id": "m"}]}
    assert await a.hold_lock("refresh", ttl=0.3)
    assert not await b.hold_lock("refresh", ttl=0.3)  # a leads
    assert await a.hold_lock("refresh", ttl=0.3)  # and renews
    await asyncio.sleep(0.4)  # a stops renewing (it died): b takes over
    assert await b.hold_lock("refresh", ttl=5)
    await b.release_lock("refresh")
    assert await a.hold_lock("refresh", ttl=5)


async def test_the_first_value_stored_stands(replicas: Callable[..., Replica]) -> None:
    """Two replicas learning the same fact (a video's end) agree on the first one's value."""
    (_, a, _), (_, b, _) = replicas(), replicas()
    await a.start()
    await b.start()
    assert await a.first_json("video:x", {"completed_at": 1}, ttl=5) == {"completed_at": 1}
    assert await b.first_json("video:x", {"completed_at": 2}, ttl=5) == {"completed_at": 1}
    assert await b.get_json("video:x") == {"completed_at": 1}


async def test_any_failure_of_a_redis_call_is_an_outage_not_an_error(
    replicas: Callable[..., Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvloop raises RuntimeError when redis-py writes on a transport closed under it (seen
    when Redis stops under load): that too must mean "serve on per-process state"."""
    pool, store, _ = replicas(cap=4, keys=KEYS[:1])
    await store.start()
    assert store.up

    async def closed_transport(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    monkeypatch.setattr(store._redis, "evalsha", closed_transport)
    monkeypatch.setattr(store._redis, "ping", closed_transport)
    lease = await pool.acquire()  # never an error
    assert lease.token is None and not store.up
    lease.release()
    await asyncio.sleep(0.5)  # probes fail the same way; the background loop must survive
    monkeypatch.undo()
    for _ in range(100):
        if store.up:
            break
        await asyncio.sleep(0.05)
    assert store.up  # the loop kept probing, and rejoined


# -- issue 14, security item 7: garbage in the proxy's keys is treated as absent, and clamped -----


@pytest.fixture
async def raw(redis_server: RedisServer, flushed: None) -> AsyncIterator[redis.asyncio.Redis]:
    """Redis as anyone with access to it sees it."""
    client = redis.asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def redis_key(key: str, part: str) -> str:
    return f"{NAMESPACE}:key:{key_id(key)}:{part}"


@pytest.mark.parametrize("limit", ["abc", "-1", "0", "nan", "inf", "-inf", "1e400", " "])
@pytest.mark.parametrize("cap", [None, 1], ids=["auto", "fixed"])
async def test_a_garbage_limit_or_epoch_in_redis_is_none(
    raw: redis.asyncio.Redis, replicas: Callable[..., Replica], limit: str, cap: int | None
) -> None:
    """A limit of `abc` gave a 500 on every request; -1, 0 or nan a key that never served."""
    pool, store, _ = replicas(cap=cap, keys=KEYS[:1])
    await raw.hset(redis_key(KEYS[0], "state"), mapping={"limit": limit, "epoch": "nan"})
    await store.start()
    lease = await asyncio.wait_for(pool.acquire(), 2)
    assert lease.token is not None and store.up  # served, through Redis
    assert pool.limit(0) == cap  # auto: no limit (none known); fixed: the cap
    lease.release()
    pool.mark_rate_limited(0, None)  # the decrease works from a clean state again
    await asyncio.sleep(0.1)
    if cap is None:
        assert pool.limit(0) == 1


async def test_a_limit_beyond_the_largest_is_clamped(
    raw: redis.asyncio.Redis, replicas: Callable[..., Replica]
) -> None:
    pool, store, _ = replicas(keys=KEYS[:1])
    await raw.hset(redis_key(KEYS[0], "state"), mapping={"limit": "1e300", "epoch": "3"})
    await store.start()
    (await pool.acquire()).release()
    assert pool.limit(0) == MAX_LIMIT


async def test_leases_and_benches_far_in_the_future_do_not_hold_a_key(
    raw: redis.asyncio.Redis, replicas: Callable[..., Replica]
) -> None:
    """A lease scored a century ahead counted for ever (a cap of 1: the key never served
    again); a bench with a TTL of years left the key out for as long."""
    pool, store, _ = replicas(cap=1, keys=KEYS[:1])
    far = 4_000_000_000_000  # ms: the year 2096
    await raw.zadd(redis_key(KEYS[0], "leases"), {"forged": far})
    await store.start()
    lease = await asyncio.wait_for(pool.acquire(), 2)
    assert lease.token is not None
    lease.release()
    await raw.set(redis_key(KEYS[0], "bench"), "auth", px=10**12)
    await store._run_ticks()
    assert not pool.is_healthy(0)  # benched, but for the longest the pool sets at most
    assert 0 < await raw.pttl(redis_key(KEYS[0], "bench")) <= 3600 * 1000
    assert pool.states[0].cooldown_until - time.monotonic() <= 3600


async def test_garbage_json_in_redis_is_absent(
    raw: redis.asyncio.Redis, replicas: Callable[..., Replica]
) -> None:
    _, store, _ = replicas()
    await store.start()
    await raw.set(store.key("models"), b"{not json")
    assert await store.get_json("models") is None
    assert store.up
