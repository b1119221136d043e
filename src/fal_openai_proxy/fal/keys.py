"""A pool of fal keys: least-loaded choice, a per-key concurrency cap, and cooldowns.

Keys are only ever referred to by index outside this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import KeysUnavailable

log = logging.getLogger(__name__)


@dataclass
class KeyState:
    in_flight: int = 0
    cooldown_until: float = 0.0
    cooldown_reason: str = ""


@dataclass(frozen=True, slots=True)
class KeyLease:
    """One request's hold on a key; release it exactly once."""

    pool: KeyPool | None
    index: int
    key: str

    def release(self) -> None:
        if self.pool is not None:
            self.pool.release(self.index)


def single_key_lease(key: str) -> KeyLease:
    """A pass-through request's own key: no pool, no cap."""
    return KeyLease(None, -1, key)


class KeyPool:
    def __init__(
        self,
        keys: list[str],
        *,
        concurrency: int,
        max_wait: float,
        auth_cooldown: float,
        rate_limit_cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not keys:
            raise ValueError("a key pool needs at least one key")
        self._keys = keys
        self._state = [KeyState() for _ in keys]
        self._concurrency = concurrency
        self._max_wait = max_wait
        self._auth_cooldown = auth_cooldown
        self._rate_limit_cooldown = rate_limit_cooldown
        self._clock = clock
        self._waiters: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def states(self) -> list[KeyState]:
        return self._state

    def is_healthy(self, index: int) -> bool:
        return self._state[index].cooldown_until <= self._clock()

    async def acquire(self, exclude: frozenset[int] = frozenset()) -> KeyLease:
        """The least-loaded healthy key, waiting up to MAX_QUEUE_WAIT for a free slot."""
        deadline = self._clock() + self._max_wait
        while True:
            index = self._pick(exclude)
            if index is not None:
                self._state[index].in_flight += 1
                return KeyLease(self, index, self._keys[index])
            wait = self._wait_time(exclude, deadline)
            await self._wait(wait)

    def release(self, index: int) -> None:
        self._state[index].in_flight -= 1
        self._wake_one()

    def mark_refused(self, index: int) -> None:
        self._cool(index, self._auth_cooldown, "auth")
        log.warning("fal refused key #%d; leaving it out for %.0f s", index, self._auth_cooldown)

    def mark_rate_limited(self, index: int, retry_after: float | None) -> None:
        seconds = max(self._rate_limit_cooldown, retry_after or 0.0)
        self._cool(index, seconds, "rate_limited")
        log.warning("fal rate limited key #%d; leaving it out for %.1f s", index, seconds)

    def has_other_healthy(self, exclude: frozenset[int]) -> bool:
        return any(self.is_healthy(i) for i in range(len(self._keys)) if i not in exclude)

    def _cool(self, index: int, seconds: float, reason: str) -> None:
        state = self._state[index]
        state.cooldown_until = max(state.cooldown_until, self._clock() + seconds)
        state.cooldown_reason = reason

    def _pick(self, exclude: frozenset[int]) -> int | None:
        best: int | None = None
        for index, state in enumerate(self._state):
            if index in exclude or state.in_flight >= self._concurrency:
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
