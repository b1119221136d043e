"""A pool of fal keys: least-loaded choice, a per-key concurrency limit, and cooldowns.

The limit of a key is either fixed (FAL_KEY_CONCURRENCY=<n>) or learned (`auto`): none until fal
answers 429, then additive increase / multiplicative decrease (AIMD) around what fal accepts.
fal's concurrency limit is per account (2 for a new one, 40 or more later); direct and /stream
calls over it get a 429, queue calls wait at fal (docs/fal-protocol.md §5).

With REDIS_URL the slots, the learned limits and the benches are the cluster's (cluster.py):
a limit is then the account's, shared by every replica. While Redis is down, each process
serves on its own state, with its share of the last known limit.

Keys are only ever referred to by index outside this module.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..store.redis import SharedDown
from .cluster import ClusterKeys, KeyView
from .errors import KeysUnavailable

log = logging.getLogger(__name__)

# Multiplicative decrease on a 429. Gentler than TCP's 0.5: fal's limit is a hard step, so
# halving from limit+1 would keep the key far below it for most of each cycle.
DECREASE = 0.7
# A learned limit never grows past this, so a key that is never at its limit cannot run away.
MAX_LIMIT = 256.0
# Retry-After beyond this (MAX_RETRY_AFTER; `inf` or negative: ignored) is cut to it: one 429
# with `Retry-After: 1e12` once benched the only key for an hour. The parsing side
# (fal/errors.py) bounds it at an hour; the pool at MAX_RETRY_AFTER, a minute by default.
MAX_RETRY_AFTER = 60.0
# While waiting for a slot freed on another replica, ask Redis again after this long at first,
# doubling up to the second (a release in this process wakes a waiter at once).
POLL_MIN, POLL_MAX = 0.02, 0.2


@dataclass
class KeyState:
    in_flight: int = 0
    cooldown_until: float = 0.0
    cooldown_reason: str = ""
    # None: no limit (auto, before fal's first 429). A float so that each success adds 1/limit.
    limit: float | None = None
    # Bumped at each decrease; a lease taken before it carries an older epoch, and its own 429
    # is part of the congestion already answered (one decrease per event, as in TCP).
    epoch: int = 0
    # What the last release() did, undone by mark_rate_limited(), which client.py calls right
    # after releasing the lease that got the 429.
    last_release_epoch: int = 0
    last_release_credit: float = 0.0


@dataclass(frozen=True, slots=True)
class KeyLease:
    """One request's hold on a key; release it exactly once."""

    pool: KeyPool | None
    index: int
    key: str
    epoch: int = 0
    token: str | None = None  # the lease's id in Redis; None: taken on per-process state

    def release(self) -> None:
        if self.pool is not None:
            self.pool.release(self.index, self.epoch, self.token)


def single_key_lease(key: str) -> KeyLease:
    """A pass-through request's own key: no pool, no cap."""
    return KeyLease(None, -1, key)


class KeyPool:
    def __init__(
        self,
        keys: list[str],
        *,
        concurrency: int | None,
        max_wait: float,
        auth_cooldown: float,
        rate_limit_cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        cluster: ClusterKeys | None = None,
        max_retry_after: float = MAX_RETRY_AFTER,
    ) -> None:
        """`concurrency`: a fixed cap per key, or None to learn each key's limit from 429s.
        `cluster`: share slots, limits and benches with the other replicas.
        `max_retry_after`: the longest a 429 benches a key (fal's Retry-After is cut to it,
        and so is KEY_RATE_LIMIT_COOLDOWN for the last healthy key)."""
        if not keys:
            raise ValueError("a key pool needs at least one key")
        self._keys = keys
        self._adaptive = concurrency is None
        start = None if concurrency is None else float(concurrency)
        self._state = [KeyState(limit=start) for _ in keys]
        self._max_wait = max_wait
        self._auth_cooldown = auth_cooldown
        self._rate_limit_cooldown = rate_limit_cooldown
        self._max_retry_after = max_retry_after
        self._clock = clock
        self._waiters: list[asyncio.Future[None]] = []
        self._cluster = cluster
        if cluster is not None:
            cluster.attach(self._apply_views, self._apply_limit)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def states(self) -> list[KeyState]:
        return self._state

    @property
    def adaptive(self) -> bool:
        return self._adaptive

    def in_flight(self, index: int) -> int:
        return self._state[index].in_flight

    def limit(self, index: int) -> int | None:
        """Requests the key may have in flight now; None: no limit."""
        limit = self._state[index].limit
        return None if limit is None else int(limit)

    def is_healthy(self, index: int) -> bool:
        return self._state[index].cooldown_until <= self._clock()

    def fingerprint(self, index: int) -> str:
        """What the console shows for a key: `sha256:` and 12 hex digits of its SHA-256 (the
        operator can compute it; nobody can get the key back from it)."""
        return key_fingerprint(self._keys[index])

    def bench(self, index: int) -> tuple[float, str] | None:
        """(seconds left, reason: "auth" | "rate_limited") while the key is left out."""
        state = self._state[index]
        left = state.cooldown_until - self._clock()
        return (left, state.cooldown_reason) if left > 0 else None

    def unmetered(self, index: int) -> KeyLease:
        """Key `index` for a call that takes no slot (a status poll, a storage upload): fal
        counts only running requests against its limit. Releasing it frees nothing."""
        return KeyLease(None, index, self._keys[index])

    async def acquire(self, exclude: frozenset[int] = frozenset()) -> KeyLease:
        """The least-loaded healthy key, waiting up to MAX_QUEUE_WAIT for a free slot."""
        if self._cluster is not None:
            return await self._acquire_shared(self._cluster, exclude)
        deadline = self._clock() + self._max_wait
        while True:
            index = self._pick(exclude)
            if index is not None:
                state = self._state[index]
                state.in_flight += 1
                return KeyLease(self, index, self._keys[index], state.epoch)
            wait = self._wait_time(exclude, deadline)
            await self._wait(wait)

    async def _acquire_shared(self, cluster: ClusterKeys, exclude: frozenset[int]) -> KeyLease:
        """As acquire(), with the slots counted in Redis; on this process's own state (and
        its share of each limit) while Redis is down."""
        deadline = self._clock() + self._max_wait
        poll = POLL_MIN
        while True:
            if cluster.up:
                try:
                    index, token, views = await cluster.acquire(exclude)
                except SharedDown:
                    continue  # serve on our own state from now on
                self._apply_views(views)
                if index is not None:
                    state = self._state[index]
                    state.in_flight += 1
                    return KeyLease(self, index, self._keys[index], state.epoch, token)
            else:
                index = self._pick(exclude, share=cluster.replicas)
                if index is not None:
                    state = self._state[index]
                    state.in_flight += 1
                    return KeyLease(self, index, self._keys[index], state.epoch)
            await self._wait(min(self._wait_time(exclude, deadline), poll))
            poll = min(poll * 2, POLL_MAX)

    def _apply_views(self, views: list[KeyView]) -> None:
        """What Redis says of every key: its shared limit, and benches set by any replica."""
        now = self._clock()
        for state, view in zip(self._state, views, strict=True):
            if self._adaptive:
                state.limit = view.limit
            state.epoch = view.epoch
            if view.bench_seconds > 0 and now + view.bench_seconds > state.cooldown_until:
                state.cooldown_until = now + view.bench_seconds
                state.cooldown_reason = view.bench_reason

    def _apply_limit(self, index: int, limit: float | None, epoch: int) -> None:
        state = self._state[index]
        if self._adaptive:
            grew = limit is not None and (state.limit is None or limit > state.limit)
            state.limit = limit
            if grew:
                self._wake_one()
        state.epoch = epoch

    def release(self, index: int, epoch: int | None = None, token: str | None = None) -> None:
        """Free a slot. In auto mode a release while at the limit counts as a success and
        adds 1/limit (one slot per limit's worth of successes); a 429 right after undoes it.
        A lease taken in Redis is released there (where the same rule applies)."""
        state = self._state[index]
        if token is not None and self._cluster is not None:
            state.in_flight -= 1
            state.last_release_epoch = state.epoch if epoch is None else epoch
            state.last_release_credit = 0.0
            self._cluster.release(index, token, state.last_release_epoch)
            self._wake_one()
            return
        credit = 0.0
        limit = state.limit
        if self._adaptive and limit is not None and state.in_flight >= int(limit):
            credit = min(MAX_LIMIT, limit + 1.0 / limit) - limit
            state.limit = limit + credit
        state.in_flight -= 1
        state.last_release_epoch = state.epoch if epoch is None else epoch
        state.last_release_credit = credit
        self._wake_one()
        if limit is not None and int(limit + credit) > int(limit):
            self._wake_one()  # the extra slot

    def mark_refused(self, index: int) -> None:
        self._cool(index, self._auth_cooldown, "auth")
        if self._cluster is not None:
            self._cluster.note_bench(index, self._auth_cooldown, "auth", rate_limited=False)
        log.warning("fal refused key #%d; leaving it out for %.0f s", index, self._auth_cooldown)

    def mark_rate_limited(self, index: int, retry_after: float | None) -> None:
        """fal answered 429 for the lease of this key that was just released.

        Fixed cap: the key is left out for KEY_RATE_LIMIT_COOLDOWN (or Retry-After).
        Auto: the 429 means the account's concurrency limit, which the lower limit answers, so
        the key stays in use (benching the only key would stall every request); it is left out
        only when fal sends Retry-After, while another key is healthy (failover), or when the
        limit is already 1 (other processes or replicas fill the account).
        """
        seconds = _clamp_retry_after(retry_after, self._max_retry_after)
        state = self._state[index]
        last_healthy = not self.has_other_healthy(frozenset({index}))
        if not self._adaptive:
            seconds = max(self._rate_limit_cooldown, seconds or 0.0)
            if last_healthy:  # the whole proxy waits on this key: never longer than the cap
                seconds = min(seconds, self._max_retry_after)
            self._cool(index, seconds, "rate_limited")
            if self._cluster is not None:
                self._cluster.note_bench(index, seconds, "rate_limited", rate_limited=True)
            log.warning("fal rate limited key #%d; leaving it out for %.1f s", index, seconds)
            return
        if state.limit is not None:
            state.limit -= state.last_release_credit  # that release was no success
        state.last_release_credit = 0.0
        at_floor = False
        if state.last_release_epoch == state.epoch:  # else: sent under the old, higher limit
            at_floor = state.limit is not None and state.limit < 2.0
            self._decrease(index, state)
        if seconds is None and (at_floor or not last_healthy):
            seconds = self._rate_limit_cooldown  # failing over beats waiting on this key
            if last_healthy:
                seconds = min(seconds, self._max_retry_after)
        if seconds:
            self._cool(index, seconds, "rate_limited")
            log.warning("fal rate limited key #%d; leaving it out for %.1f s", index, seconds)
        if self._cluster is not None:  # the shared limit is cut (once per event) in Redis
            self._cluster.note_bench(index, seconds or 0.0, "rate_limited", rate_limited=True)

    def has_other_healthy(self, exclude: frozenset[int]) -> bool:
        return any(self.is_healthy(i) for i in range(len(self._keys)) if i not in exclude)

    def _decrease(self, index: int, state: KeyState) -> None:
        # What fal accepted is at most what was in flight (this request included).
        current = state.in_flight + 1
        base = float(current) if state.limit is None else min(state.limit, float(current))
        state.limit = float(max(1, math.floor(base * DECREASE)))
        state.epoch += 1
        log.info("fal rate limited key #%d: its limit is now %d", index, int(state.limit))

    def _cool(self, index: int, seconds: float, reason: str) -> None:
        state = self._state[index]
        state.cooldown_until = max(state.cooldown_until, self._clock() + seconds)
        state.cooldown_reason = reason

    def _pick(self, exclude: frozenset[int], share: int = 1) -> int | None:
        """`share`: the replicas sharing each limit, while Redis is down (1 otherwise)."""
        best: int | None = None
        for index, state in enumerate(self._state):
            limit = state.limit
            if limit is not None and share > 1:
                limit = max(1.0, math.floor(limit / share))
            if index in exclude or (limit is not None and state.in_flight >= limit):
                continue
            if not self.is_healthy(index):
                continue
            if best is None or state.in_flight < self._state[best].in_flight:
                best = index
        return best

    def _wait_time(self, exclude: frozenset[int], deadline: float) -> float:
        """How long to wait for a key, or KeysUnavailable when waiting cannot help."""
        now = self._clock()
        candidates = [i for i in range(len(self._keys)) if i not in exclude]
        cooling = [i for i in candidates if not self.is_healthy(i)]
        remaining = deadline - now
        if candidates and len(cooling) == len(candidates):
            soonest = min(self._state[i].cooldown_until for i in cooling) - now
            reasons = {self._state[i].cooldown_reason for i in cooling}
            if soonest > remaining or reasons == {"auth"}:
                reason = "rate_limited" if "rate_limited" in reasons else "auth"
                raise KeysUnavailable(reason, retry_after=soonest)
            return soonest
        if not candidates:
            raise KeysUnavailable("auth", retry_after=self._auth_cooldown)
        if remaining <= 0:
            raise KeysUnavailable("busy", retry_after=1.0)
        return remaining

    async def _wait(self, seconds: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                await waiter
        except TimeoutError:
            pass
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return


def key_fingerprint(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _clamp_retry_after(value: float | None, limit: float) -> float | None:
    """A usable Retry-After in 0..limit seconds, or None (NaN and negatives too)."""
    if value is None or math.isnan(value) or value < 0:
        return None
    return min(value, limit)
