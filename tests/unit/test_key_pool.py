"""fal/keys.py: least-loaded choice, per-key cap, queue wait and cooldowns."""

from __future__ import annotations

import asyncio
import time

import pytest

from fal_openai_proxy.fal.errors import KeysUnavailable
from fal_openai_proxy.fal.keys import KeyPool, single_key_lease

KEYS = ["key-zero", "key-one", "key-two"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    keys: list[str] | None = None,
    *,
    concurrency: int = 2,
    max_wait: float = 0.0,
    clock: FakeClock | None = None,
) -> KeyPool:
    return KeyPool(
        list(KEYS if keys is None else keys),
        concurrency=concurrency,
        max_wait=max_wait,
        auth_cooldown=600.0,
        rate_limit_cooldown=5.0,
        clock=clock or time.monotonic,
    )


def test_empty_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        make([])


async def test_least_loaded_key_is_chosen() -> None:
    pool = make()
    leases = [await pool.acquire() for _ in range(3)]
    assert sorted(lease.index for lease in leases) == [0, 1, 2]
    assert [lease.key for lease in leases] == [KEYS[lease.index] for lease in leases]
    leases[1].release()
    again = await pool.acquire()
    assert again.index == leases[1].index
    assert [s.in_flight for s in pool.states] == [1, 1, 1]


async def test_release_decrements_in_flight() -> None:
    pool = make(["only"])
    lease = await pool.acquire()
    assert pool.states[0].in_flight == 1
    lease.release()
    assert pool.states[0].in_flight == 0


async def test_cap_per_key_then_wait_for_a_release() -> None:
    pool = make(["only"], concurrency=1, max_wait=5.0)
    held = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.02)
    assert not waiting.done()
    assert pool.states[0].in_flight == 1
    started = time.monotonic()
    held.release()
    lease = await asyncio.wait_for(waiting, 1.0)
    assert time.monotonic() - started < 0.5  # woken by the release, not by the timeout
    assert lease.index == 0
    assert pool.states[0].in_flight == 1


async def test_queue_wait_expires_as_busy() -> None:
    pool = make(["only"], concurrency=1, max_wait=0.05)
    await pool.acquire()
    started = time.monotonic()
    with pytest.raises(KeysUnavailable) as info:
        await pool.acquire()
    elapsed = time.monotonic() - started
    assert info.value.reason == "busy"
    assert 0.04 <= elapsed < 1.0


async def test_zero_queue_wait_is_busy_at_once() -> None:
    pool = make(["only"], concurrency=1, max_wait=0.0)
    await pool.acquire()
    with pytest.raises(KeysUnavailable) as info:
        await pool.acquire()
    assert info.value.reason == "busy"


async def test_refused_key_is_skipped_until_its_cooldown_ends() -> None:
    clock = FakeClock()
    pool = make(clock=clock)
    pool.mark_refused(0)
    assert pool.states[0].cooldown_reason == "auth"
    picked = [(await pool.acquire()).index for _ in range(4)]
    assert 0 not in picked
    clock.now += 599
    assert not pool.is_healthy(0)
    clock.now += 1
    assert pool.is_healthy(0)
    assert (await pool.acquire()).index == 0  # now the least loaded


async def test_rate_limited_key_cools_down_and_recovers() -> None:
    clock = FakeClock()
    pool = make(["only"], clock=clock)
    pool.mark_rate_limited(0, None)
    with pytest.raises(KeysUnavailable) as info:
        await pool.acquire()
    assert info.value.reason == "rate_limited"
    assert info.value.retry_after == pytest.approx(5.0)
    clock.now += 4.9
    assert not pool.is_healthy(0)
    clock.now += 0.1
    assert (await pool.acquire()).index == 0


@pytest.mark.parametrize(("retry_after", "cooldown"), [(30.0, 30.0), (1.0, 5.0), (None, 5.0)])
async def test_rate_limit_cooldown_is_the_longer_of_setting_and_retry_after(
    retry_after: float | None, cooldown: float
) -> None:
    clock = FakeClock()
    pool = make(["only"], clock=clock)
    pool.mark_rate_limited(0, retry_after)
    assert pool.states[0].cooldown_until == pytest.approx(clock.now + cooldown)


async def test_waits_for_a_rate_limit_cooldown_shorter_than_the_queue_wait() -> None:
    pool = KeyPool(
        ["only"],
        concurrency=1,
        max_wait=2.0,
        auth_cooldown=600.0,
        rate_limit_cooldown=0.05,
    )
    pool.mark_rate_limited(0, None)
    started = time.monotonic()
    lease = await pool.acquire()
    assert lease.index == 0
    assert 0.04 <= time.monotonic() - started < 1.0


async def test_cooldown_never_shortened_by_a_later_mark() -> None:
    clock = FakeClock()
    pool = make(["only"], clock=clock)
    pool.mark_refused(0)
    pool.mark_rate_limited(0, None)
    assert pool.states[0].cooldown_until == pytest.approx(clock.now + 600)


async def test_all_keys_refused_is_auth_without_waiting() -> None:
    pool = make(max_wait=10.0)
    for index in range(len(KEYS)):
        pool.mark_refused(index)
    started = time.monotonic()
    with pytest.raises(KeysUnavailable) as info:
        await pool.acquire()
    assert info.value.reason == "auth"
    assert time.monotonic() - started < 0.5


async def test_refused_and_rate_limited_mix_is_rate_limited() -> None:
    clock = FakeClock()
    pool = make(["a", "b"], clock=clock)
    pool.mark_refused(0)
    pool.mark_rate_limited(1, 20.0)
    with pytest.raises(KeysUnavailable) as info:
        await pool.acquire()
    assert info.value.reason == "rate_limited"
    assert info.value.retry_after == pytest.approx(20.0)


async def test_exclude_is_honoured() -> None:
    pool = make()
    assert (await pool.acquire(exclude=frozenset({0}))).index == 1
    assert (await pool.acquire(exclude=frozenset({0, 1}))).index == 2
    assert pool.states[0].in_flight == 0


async def test_excluding_every_key_is_auth() -> None:
    pool = make(max_wait=10.0)
    with pytest.raises(KeysUnavailable) as info:
        await pool.acquire(exclude=frozenset({0, 1, 2}))
    assert info.value.reason == "auth"


def test_has_other_healthy() -> None:
    clock = FakeClock()
    pool = make(["a", "b"], clock=clock)
    assert pool.has_other_healthy(frozenset({0}))
    pool.mark_refused(1)
    assert not pool.has_other_healthy(frozenset({0}))
    assert pool.has_other_healthy(frozenset())


def test_single_key_lease_has_no_pool() -> None:
    lease = single_key_lease("client-key")
    assert (lease.pool, lease.index, lease.key) == (None, -1, "client-key")
    lease.release()  # nothing to release; must not fail
