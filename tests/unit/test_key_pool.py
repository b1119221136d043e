"""fal/keys.py: least-loaded choice, per-key cap, queue wait and cooldowns."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from fal_openai_proxy.fal.errors import KeysUnavailable
from fal_openai_proxy.fal.keys import MAX_LIMIT, KeyLease, KeyPool, single_key_lease

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


# --- auto: limits learned from fal's 429s (AIMD) ---


def make_auto(keys: int = 1, *, max_wait: float = 0.0, clock: FakeClock | None = None) -> KeyPool:
    return KeyPool(
        KEYS[:keys],
        concurrency=None,
        max_wait=max_wait,
        auth_cooldown=600.0,
        rate_limit_cooldown=5.0,
        clock=clock or FakeClock(),
    )


def rate_limited(pool: KeyPool, lease: KeyLease, retry_after: float | None = None) -> None:
    """What fal/client.py does with a 429: release the lease, then mark the key."""
    lease.release()
    pool.mark_rate_limited(lease.index, retry_after)


async def test_auto_has_no_limit_until_a_429() -> None:
    pool = make_auto()
    leases = [await pool.acquire() for _ in range(50)]
    assert pool.limit(0) is None
    assert pool.in_flight(0) == 50
    for lease in leases:
        lease.release()
    assert pool.limit(0) is None  # successes without a limit do not invent one


async def test_auto_429_sets_the_limit_from_what_was_in_flight() -> None:
    pool = make_auto()
    leases = [await pool.acquire() for _ in range(20)]
    rate_limited(pool, leases[-1])
    assert pool.limit(0) == 14  # 20 in flight at the 429, times 0.7
    assert pool.is_healthy(0)  # no Retry-After: the lower limit is the answer, no bench
    assert pool.in_flight(0) == 19
    with pytest.raises(KeysUnavailable) as info:  # over the new limit: wait (here: none)
        await pool.acquire()
    assert info.value.reason == "busy"


async def test_auto_one_decrease_per_congestion_event() -> None:
    pool = make_auto()
    leases = [await pool.acquire() for _ in range(20)]
    for lease in leases[10:]:  # ten 429s for requests all sent before the first decrease
        rate_limited(pool, lease)
    assert pool.limit(0) == 14
    for lease in leases[:10]:
        lease.release()
    fresh = [await pool.acquire() for _ in range(5)]
    rate_limited(pool, fresh[-1])  # a request sent under the new limit: a new event
    assert pool.limit(0) == 3  # min(limit 14, 5 in flight) * 0.7


async def test_auto_successes_at_the_limit_add_one_per_window() -> None:
    pool = make_auto()
    leases = [await pool.acquire() for _ in range(5)]
    rate_limited(pool, leases[-1])
    assert pool.limit(0) == 3
    held = leases[:3]
    leases[3].release()  # over the limit after the 429: not a success at the limit
    # Steady state at the limit: each release is followed by a new request.
    for limit in (3, 4, 5):
        pool.states[0].limit = float(limit)
        successes = 0
        while pool.limit(0) == limit:
            held.pop(0).release()
            successes += 1
            held.append(await pool.acquire())
            if pool.limit(0) != limit:
                held.append(await pool.acquire())  # the extra slot
        assert pool.limit(0) == limit + 1
        assert limit <= successes <= limit + 1


async def test_auto_successes_below_the_limit_do_not_raise_it() -> None:
    pool = make_auto()
    leases = [await pool.acquire() for _ in range(10)]
    rate_limited(pool, leases[-1])
    for lease in leases[:9]:
        lease.release()
    limit = pool.limit(0)
    for _ in range(100):
        (await pool.acquire()).release()  # one at a time, far below the limit
    assert pool.limit(0) == limit


async def test_auto_limit_floor_is_one_and_then_the_key_cools_down() -> None:
    clock = FakeClock()
    pool = make_auto(clock=clock)
    lease = await pool.acquire()
    rate_limited(pool, lease)
    assert pool.limit(0) == 1
    assert pool.is_healthy(0)
    lease = await pool.acquire()
    rate_limited(pool, lease)  # at 1 and still refused: the account is full elsewhere
    assert pool.limit(0) == 1
    assert not pool.is_healthy(0)
    clock.now += 5.0
    assert pool.is_healthy(0)


async def test_auto_retry_after_benches_the_key_clamped() -> None:
    clock = FakeClock()
    pool = make_auto(clock=clock)
    leases = [await pool.acquire() for _ in range(4)]
    rate_limited(pool, leases[0], retry_after=2.0)
    assert not pool.is_healthy(0)
    clock.now += 2.0
    assert pool.is_healthy(0)
    rate_limited(pool, leases[1], retry_after=math.inf)
    clock.now += 3600.0
    assert pool.is_healthy(0)  # an infinite Retry-After is an hour at most


@pytest.mark.parametrize("retry_after", [-5.0, math.nan, math.inf, 1e12])
def test_fixed_cap_retry_after_is_clamped(retry_after: float) -> None:
    clock = FakeClock()
    pool = make(["only"], clock=clock)
    pool.mark_rate_limited(0, retry_after)
    clock.now += 3600.0
    assert pool.is_healthy(0)


async def test_auto_limit_growth_wakes_a_waiter() -> None:
    pool = make_auto(max_wait=5.0, clock=None)
    leases = [await pool.acquire() for _ in range(3)]
    rate_limited(pool, leases[-1])  # 3 in flight * 0.7 -> limit 2, two still held
    assert pool.limit(0) == 2
    waiters = [asyncio.create_task(pool.acquire()) for _ in range(2)]
    await asyncio.sleep(0.01)
    leases[0].release()  # a success at the limit: 2.5, one waiter gets the freed slot
    await asyncio.sleep(0.01)
    assert sum(w.done() for w in waiters) == 1
    for w in waiters:
        w.cancel()


async def test_auto_limit_never_exceeds_the_maximum() -> None:
    pool = make_auto()
    pool.states[0].limit = MAX_LIMIT - 0.001
    held = [await pool.acquire() for _ in range(int(MAX_LIMIT) - 1)]
    for _ in range(1000):
        (await pool.acquire()).release()
    assert pool.limit(0) == int(MAX_LIMIT)
    for lease in held:
        lease.release()


async def test_fixed_cap_is_not_learned() -> None:
    pool = make(["only"], concurrency=3)
    leases = [await pool.acquire() for _ in range(3)]
    assert pool.limit(0) == 3
    rate_limited(pool, leases[0])
    assert pool.limit(0) == 3
    assert not pool.is_healthy(0)  # the old behaviour: left out for the cooldown
    for lease in leases[1:]:
        lease.release()
    assert pool.limit(0) == 3


async def test_auto_429_benches_the_key_while_another_is_healthy() -> None:
    pool = make_auto(keys=2)
    lease = await pool.acquire()
    rate_limited(pool, lease)
    assert not pool.is_healthy(lease.index)  # the next request fails over
    assert pool.limit(lease.index) == 1
    other = await pool.acquire()
    rate_limited(pool, other)
    assert pool.is_healthy(other.index)  # the last healthy key stays in use


# -- issue 14, security item 8: one 429 must not take the proxy down ------------------------------


@pytest.mark.parametrize("concurrency", [None, 2], ids=["auto", "fixed"])
async def test_a_huge_retry_after_benches_the_only_key_a_minute_at_most(
    concurrency: int | None,
) -> None:
    """After one 429 with `Retry-After: 1e12` the only key answered 429 for an hour."""
    clock = FakeClock()
    pool = KeyPool(
        ["only"], concurrency=concurrency, max_wait=0, auth_cooldown=600,
        rate_limit_cooldown=5, clock=clock,
    )  # fmt: skip
    (await pool.acquire()).release()
    pool.mark_rate_limited(0, 1e12)
    assert pool.states[0].cooldown_until - clock.now == 60.0  # MAX_RETRY_AFTER's default
    clock.now += 60
    assert pool.is_healthy(0)


async def test_the_last_healthy_key_is_never_benched_longer_than_the_cap() -> None:
    """Even KEY_RATE_LIMIT_COOLDOWN gives way for the key every request waits on; another key
    with a healthy neighbour takes the whole cooldown (failing over costs nothing)."""
    clock = FakeClock()
    pool = KeyPool(
        ["a", "b"], concurrency=2, max_wait=0, auth_cooldown=600, rate_limit_cooldown=300,
        clock=clock, max_retry_after=10,
    )  # fmt: skip
    (await pool.acquire()).release()
    pool.mark_rate_limited(0, None)
    assert pool.states[0].cooldown_until - clock.now == 300  # key b still serves
    pool.mark_rate_limited(1, 1e12)
    assert pool.states[1].cooldown_until - clock.now == 10  # the last one: the cap
