"""The calls of fal's server-proxy protocol toward fal: which key, failover, retries
(docs/fal-protocol.md §13).

A call that starts work (run, `/stream`, submit) takes a slot of a pool key through
`CallStarter`, as every other call of the proxy: failover to another key on 401/403/429,
fal_client's retries (docs/fal-protocol.md §5) within RETRY_BUDGET, and the adaptive per-key
limit. Its lease is held until the answer has been relayed. A follow-up (status, result,
cancel) or a storage upload takes no slot, as fal counts only running requests: it goes with
the key that submitted the request when that is known, else with each healthy key in turn
while fal refuses it (keys of several accounts see different requests).

The answer is handed back with every header (`all_headers`) and its body unread, to be
relayed as it arrives. An error answer that a retry could mend is read (such bodies are
small) and kept whole, so that the client gets it unchanged if no retry helps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from ..base.metrics import Metrics
from .errors import FalStatusError, parse_error_response
from .keys import KeyLease, KeyPool, single_key_lease
from .proxy_protocol import Target, Upstreams
from .retry import CallStarter, with_poll_retries
from .timeouts import Timeouts, deadline
from .transport import StreamingResponse, Transport

# Statuses `CallStarter` may answer with another attempt (retry.py): read and kept whole.
_MENDABLE = frozenset({401, 403, 408, 409, 429, 502, 503, 504})
# A follow-up with a key of another account: fal does not know the request (*unverified*
# which of these fal answers; all three send the call on to the next key).
_WRONG_ACCOUNT = frozenset({401, 403, 404})
_IDEMPOTENT = frozenset({"GET", "PUT"})
_FOLLOW_UP_RETRIES = 3  # a refused or dropped connection, as for the queue's polls


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole answer of fal's, kept to be relayed unchanged."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class RelayRefused(FalStatusError):
    """fal answered with an error a retry could mend; `answer` is that answer, whole."""

    def __init__(self, error: FalStatusError, answer: Answer) -> None:
        super().__init__(
            error.status,
            error.message,
            error_type=error.error_type,
            request_id=error.request_id,
            retryable=error.retryable,
            retry_after=error.retry_after,
            key_index=error.key_index,
            ingress_page=error.ingress_page,
        )
        self.answer = answer


@dataclass(slots=True)
class Opened:
    """fal's answer with its headers in and its body unread, and the key that has it."""

    response: StreamingResponse
    lease: KeyLease


class FalProxyClient:
    def __init__(
        self,
        *,
        http: Transport,
        pool: KeyPool | None,
        timeouts: Timeouts,
        metrics: Metrics,
        upstreams: Upstreams,
    ) -> None:
        self._http = http
        self._pool = pool
        self._timeouts = timeouts
        self._metrics = metrics
        self._upstreams = upstreams
        self._starter = CallStarter(pool, timeouts.retry_budget, metrics)

    @property
    def timeouts(self) -> Timeouts:
        return self._timeouts

    async def open(
        self,
        target: Target,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        client_key: str | None,
        key_index: int | None,
        total_deadline: float,
    ) -> Opened:
        """Send the call to fal and wait for the answer's headers. `client_key`: the
        client's own fal key (pass-through); `key_index`: the pool key that submitted the
        request a follow-up names, if known."""
        url = self._upstreams.url_for(target)
        if target.starts_work:
            return await self._start(url, method, headers, body, client_key, total_deadline)
        return await self._follow(url, method, headers, body, client_key, key_index, total_deadline)

    async def _start(
        self,
        url: str,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None,
        client_key: str | None,
        total_deadline: float,
    ) -> Opened:
        first, total = self._timeouts.first_event, self._timeouts.total

        async def attempt(lease: KeyLease) -> StreamingResponse:
            async with deadline(first, "first_event", total_deadline, total):
                response = await self._send(url, method, headers, body, lease)
                if response.status in _MENDABLE:
                    raise await _refusal(response, lease)
            return response

        response, lease = await self._starter.start(attempt, client_key, total_deadline)
        return Opened(response, lease)

    async def _follow(
        self,
        url: str,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None,
        client_key: str | None,
        key_index: int | None,
        total_deadline: float,
    ) -> Opened:
        leases = self._follow_up_leases(client_key, key_index)
        timeouts = self._timeouts
        loop = asyncio.get_running_loop()
        for n, lease in enumerate(leases):

            async def send(lease: KeyLease = lease) -> StreamingResponse:
                async with deadline(
                    timeouts.first_event, "first_event", total_deadline, timeouts.total
                ):
                    return await self._send(url, method, headers, body, lease)

            if method in _IDEMPOTENT:
                until = min(total_deadline, loop.time() + timeouts.retry_budget)
                response = await with_poll_retries(
                    send, _FOLLOW_UP_RETRIES, until, self._metrics, statuses=False
                )
            else:
                response = await send()
            last = n == len(leases) - 1
            if not last and response.status in _WRONG_ACCOUNT:
                await _refusal(response, lease)  # read, and the connection pooled again
                if response.status in (401, 403) and self._pool is not None:
                    self._pool.mark_refused(lease.index)
                continue
            return Opened(response, lease)
        raise AssertionError("unreachable: the last key's answer is returned")

    def _follow_up_leases(self, client_key: str | None, key_index: int | None) -> list[KeyLease]:
        pool = self._pool
        if client_key is not None or pool is None:
            # Pass-through (the guard let no request without a key in).
            return [single_key_lease(client_key or "")]
        if key_index is not None and 0 <= key_index < len(pool):
            return [pool.unmetered(key_index)]
        order = sorted(range(len(pool)), key=lambda i: (not pool.is_healthy(i), pool.in_flight(i)))
        return [pool.unmetered(i) for i in order]

    async def _send(
        self,
        url: str,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None,
        lease: KeyLease,
    ) -> StreamingResponse:
        keyed = {**headers, "Authorization": f"Key {lease.key}"}
        return await self._http.open(method, url, keyed, body, all_headers=True)


async def _refusal(response: StreamingResponse, lease: KeyLease) -> RelayRefused:
    try:
        body = await response.read_body()
    finally:
        response.close()
    error = parse_error_response(response.status, response.headers, body, lease.index)
    return RelayRefused(error, Answer(response.status, response.headers, body))


__all__ = ["Answer", "FalProxyClient", "Opened", "RelayRefused"]
