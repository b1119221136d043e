"""Starting a fal call: a key from the pool, failover to another key, and retries; and the
retries of the queue's polls (status, result, cancel).

A call that starts work (a submit, a direct run, a `/stream` open) is retried only while fal
has certainly not started it: connect errors, 408, 409, 429, and 502/503/504 from fal's
ingress (no `x-fal-request-id` and nginx's page, fal_client's `_is_ingress_error`). Never
after a queue submit was answered, nor once a stream has begun. The rules are fal_client's
(`_maybe_retry_request`, docs/fal-protocol.md §5), with Retry-After honoured and the backoff
capped by what is left of RETRY_BUDGET.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import stamina

from ..base.metrics import Metrics
from .errors import (
    FalBrokenError,
    FalConnectError,
    FalError,
    FalStatusError,
    FalTimeout,
    FalTLSError,
    FalTransportError,
)
from .keys import KeyLease, KeyPool, single_key_lease

T = TypeVar("T")

_RETRY_STATUSES = (408, 409, 429)
_INGRESS_RETRY_STATUSES = (502, 503, 504)
# stamina's backoff: WAIT_INITIAL * 2**(n-1) plus up to WAIT_JITTER, at most WAIT_MAX.
_WAIT_INITIAL, _WAIT_JITTER, _WAIT_MAX = 0.1, 0.1, 5.0

# stamina reports retries to a process-wide Prometheus registry; we count ours per app.
stamina.instrumentation.set_on_retry_hooks([])


class CallStarter:
    """Runs the first fal call of a request (a stream open, a submit) with failover."""

    def __init__(self, pool: KeyPool | None, retry_budget: float, metrics: Metrics) -> None:
        self._pool = pool
        self._retry_budget = retry_budget
        self._metrics = metrics

    async def start(
        self,
        attempt_fn: Callable[[KeyLease], Awaitable[T]],
        client_key: str | None,
        total_deadline: float,
    ) -> tuple[T, KeyLease]:
        loop = asyncio.get_running_loop()
        retry_deadline = min(loop.time() + self._retry_budget, total_deadline)
        refused: set[int] = set()
        try:
            # The common case pays for no retry machinery.
            return await self._attempt(attempt_fn, client_key, refused)
        except FalError as exc:
            if loop.time() >= retry_deadline:
                raise
            first_failure: FalError | None = exc
        failures = 0

        def backoff(exc: BaseException) -> bool | float:  # stamina >= 26 passes BaseException
            nonlocal failures
            failures += 1
            budget_left = retry_deadline - loop.time()
            decision = self._retry_backoff(exc, budget_left, frozenset(refused))
            # Never sleep past the budget: a retry that starts late could outlive the
            # request, leaving fal work that nobody waits for.
            if decision is True and _longest_backoff(failures) >= budget_left:
                return False
            return decision

        async for attempt in stamina.retry_context(
            on=backoff,
            attempts=None,
            timeout=max(0.0, retry_deadline - loop.time()),
            wait_initial=_WAIT_INITIAL,
            wait_max=_WAIT_MAX,
            wait_jitter=_WAIT_JITTER,
        ):
            with attempt:
                if first_failure is not None:
                    failure, first_failure = first_failure, None
                    raise failure  # stamina decides on it, and backs off, as for the others
                self._metrics.retries.inc()
                return await self._attempt(attempt_fn, client_key, refused)
        raise AssertionError("unreachable: stamina re-raises the last failure")

    async def _attempt(
        self,
        attempt_fn: Callable[[KeyLease], Awaitable[T]],
        client_key: str | None,
        refused: set[int],
    ) -> tuple[T, KeyLease]:
        lease = await self._lease(client_key, frozenset(refused))
        try:
            return await attempt_fn(lease), lease
        except BaseException as exc:
            lease.release()
            self.note_failure(lease, exc, refused)
            raise

    async def _lease(self, client_key: str | None, refused: frozenset[int]) -> KeyLease:
        if self._pool is None:
            if client_key is None:
                raise FalStatusError(401, "no fal key: send your fal key as the Bearer token")
            return single_key_lease(client_key)
        return await self._pool.acquire(refused)

    def note_failure(self, lease: KeyLease, exc: BaseException, refused: set[int]) -> None:
        """Count the failure, and bench the key if fal refused or rate-limited it."""
        if isinstance(exc, FalStatusError):
            self._metrics.upstream_errors.labels(exc.kind).inc()
            if self._pool is not None and lease.pool is not None:
                if exc.account_locked:
                    # A valid key of an account out of credit: another key (another account)
                    # may serve this request, but the key is not benched as refused
                    # (docs/fal-protocol.md §9.2); a top-up makes it work again at once.
                    refused.add(lease.index)
                elif exc.status in (401, 403):
                    refused.add(lease.index)
                    self._pool.mark_refused(lease.index)
                elif exc.status == 429:
                    self._pool.mark_rate_limited(lease.index, exc.retry_after)
        elif isinstance(exc, FalTransportError):
            self._metrics.upstream_errors.labels(exc.kind).inc()

    def _retry_backoff(
        self, exc: BaseException, budget_left: float, refused: frozenset[int]
    ) -> bool | float:
        """False: give up. True: back off exponentially. A float: wait that long."""
        if isinstance(exc, FalTLSError):
            return False
        if isinstance(exc, FalConnectError) or (
            isinstance(exc, FalTimeout) and exc.which == "connect"
        ):
            return True
        if not isinstance(exc, FalStatusError) or exc.retryable is False:
            return False
        if exc.status in (401, 403):
            # Another key may work; the same key will not.
            return self._pool is not None and self._pool.has_other_healthy(refused) and 0.001
        if exc.status == 429 and self._pool is not None and self._pool.has_other_healthy(refused):
            return 0.001
        if exc.status in _RETRY_STATUSES or (
            exc.status in _INGRESS_RETRY_STATUSES and exc.from_ingress
        ):
            if exc.retry_after is None:
                return True
            return exc.retry_after if exc.retry_after < budget_left else False
        return False


def _longest_backoff(failures: int) -> float:
    return min(_WAIT_INITIAL * 2.0 ** (failures - 1) + _WAIT_JITTER, _WAIT_MAX)


# -- polls: status, result and cancel ---------------------------------------------------------
# fal-js retries the queue's status calls on 429, 500, 502, 503, 504 and network errors,
# 5 times for status (`QUEUE_STATUS_RETRY_CONFIG`, fal-ai/fal-js `libs/client/src/queue.ts`),
# and 3 times by default (`libs/client/src/retry.ts`); fal_client retries them too
# (`_maybe_retry_request`). These calls read or cancel work fal already has: repeating them
# cannot start it twice. The backoff is fal_client's base (0.1 s, doubling) with fal-js's
# ±25 % jitter, and never sleeps past the request's deadline.
STATUS_RETRIES = 5
RESULT_RETRIES = 3
CANCEL_RETRIES = 3
_POLL_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_POLL_WAIT_INITIAL, _POLL_WAIT_MAX = 0.1, 5.0


def poll_retryable(exc: FalError, *, statuses: bool = True) -> bool:
    """Whether a failed poll may be repeated. `statuses=False`: only a lost connection."""
    if isinstance(exc, FalTLSError):
        return False
    if isinstance(exc, FalConnectError | FalBrokenError) and not isinstance(exc, FalTimeout):
        return True
    return (
        statuses
        and isinstance(exc, FalStatusError)
        and exc.status in _POLL_RETRY_STATUSES
        and exc.retryable is not False
    )


async def with_poll_retries(
    call: Callable[[], Awaitable[T]],
    retries: int,
    until: float,
    metrics: Metrics,
    *,
    statuses: bool = True,
) -> T:
    """`call()`, repeated up to `retries` times on a retryable failure, before `until`."""
    try:
        return await call()  # the common case pays for no retry machinery
    except FalError as exc:
        if not poll_retryable(exc, statuses=statuses):
            raise
        failure = exc
    loop = asyncio.get_running_loop()
    for n in range(retries):
        hinted = failure.retry_after if isinstance(failure, FalStatusError) else None
        delay = (
            hinted
            if hinted is not None
            else min(_POLL_WAIT_INITIAL * 2.0**n, _POLL_WAIT_MAX) * random.uniform(0.75, 1.25)
        )
        if loop.time() + delay >= until:
            break
        await asyncio.sleep(delay)
        metrics.retries.inc()
        try:
            return await call()
        except FalError as exc:
            if not poll_retryable(exc, statuses=statuses):
                raise
            failure = exc
    raise failure
