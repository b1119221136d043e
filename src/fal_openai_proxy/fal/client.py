"""fal's protocol: direct `/stream` calls and the queue, with key failover and retries.

Retries happen only while fal has certainly not started the work: connect errors, 408, 409,
429, and 502/503/504 from fal's ingress (no `x-fal-request-id`). Never after a queue submit
was answered, nor once a stream has begun.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import orjson
import stamina

from .. import __version__
from ..metrics import Metrics
from .errors import (
    FalBrokenError,
    FalConnectError,
    FalError,
    FalTimeout,
    FalTLSError,
    KeysUnavailable,
    parse_error_response,
)
from .http import HttpClient, OpenResponse
from .keys import KeyLease, KeyPool, single_key_lease
from .sse import SSEDecoder

log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = f"fal-openai-proxy/{__version__}"
# fal's queue `error_type` values and the status each stands for (fal-protocol.md §1.7).
_ERROR_TYPE_STATUS = {
    "request_timeout": 504,
    "startup_timeout": 504,
    "runner_scheduling_failure": 503,
    "runner_connection_timeout": 503,
    "runner_disconnected": 503,
    "runner_connection_refused": 503,
    "runner_connection_error": 503,
    "runner_incomplete_response": 502,
    "client_disconnected": 499,
    "client_cancelled": 499,
    "bad_request": 400,
}
_RETRY_STATUSES = (408, 409, 429)
_INGRESS_RETRY_STATUSES = (502, 503, 504)
_CANCEL_TIMEOUT = 5.0
# stamina's backoff: WAIT_INITIAL * 2**(n-1) plus up to WAIT_JITTER, at most WAIT_MAX.
_WAIT_INITIAL, _WAIT_JITTER, _WAIT_MAX = 0.1, 0.1, 5.0

# stamina reports retries to a process-wide Prometheus registry; we count ours per app.
stamina.instrumentation.set_on_retry_hooks([])


@dataclass(frozen=True)
class Timeouts:
    connect: float
    first_event: float
    idle: float
    total: float
    keepalive: float
    retry_budget: float


@dataclass(frozen=True)
class QueueResult:
    output: dict[str, Any]
    request_id: str


class FalClient:
    def __init__(
        self,
        *,
        run_url: str,
        queue_url: str,
        http: HttpClient,
        pool: KeyPool | None,
        timeouts: Timeouts,
        metrics: Metrics,
    ) -> None:
        self._run_url = run_url
        self._queue_url = queue_url
        self._http = http
        self._pool = pool
        self._timeouts = timeouts
        self._metrics = metrics

    # -- streams ----------------------------------------------------------------------------

    async def open_stream(
        self, app: str, payload: Mapping[str, Any], client_key: str | None
    ) -> FalStream:
        """POST {run}/{app}/stream and wait until fal answers 200 with an event stream."""
        loop = asyncio.get_running_loop()
        total_deadline = loop.time() + self._timeouts.total
        url = f"{self._run_url}/{app}/stream"
        body = orjson.dumps(payload)

        async def attempt(lease: KeyLease) -> OpenResponse:
            headers = _headers(lease.key, accept="text/event-stream")
            async with _deadline(
                self._timeouts.first_event, "first_event", total_deadline, self._timeouts.total
            ):
                response = await self._http.open("POST", url, headers, body)
                if response.status != 200 or not _is_event_stream(response.headers):
                    raise await _error_from(response, lease)
            return response

        response, lease = await self._start(attempt, client_key, total_deadline)
        return FalStream(
            response,
            lease,
            timeouts=self._timeouts,
            first_deadline=loop.time() + self._timeouts.first_event,
            total_deadline=total_deadline,
        )

    # -- queue ------------------------------------------------------------------------------

    async def run_queued(
        self, app: str, payload: Mapping[str, Any], client_key: str | None
    ) -> QueueResult:
        """Submit to fal's queue, follow the status to COMPLETED, fetch the result.

        If the caller is cancelled (the client went away) or a timeout expires before the
        result, the fal request is cancelled with PUT cancel_url.
        """
        loop = asyncio.get_running_loop()
        total_deadline = loop.time() + self._timeouts.total
        body = orjson.dumps(payload)
        url = f"{self._queue_url}/{app}"

        async def attempt(lease: KeyLease) -> dict[str, Any]:
            async with _deadline(
                self._timeouts.first_event, "first_event", total_deadline, self._timeouts.total
            ):
                reply = await self._http.send("POST", url, _headers(lease.key), body)
            if reply.status != 200:
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            return _parse_submit(reply.body)

        submitted, lease = await self._start(attempt, client_key, total_deadline)
        request_id = str(submitted["request_id"])
        done = False
        try:
            async with _deadline(
                self._timeouts.total, "total", total_deadline, self._timeouts.total
            ):
                status = await self._wait_for_completion(submitted, lease)
                done = True
                _raise_if_failed(status, request_id)
                output = await self._fetch_result(submitted, lease, request_id)
            return QueueResult(output, request_id)
        except BaseException:
            if not done:
                await _shielded(self._cancel(submitted["cancel_url"], lease))
            raise
        finally:
            lease.release()

    async def _wait_for_completion(
        self, submitted: Mapping[str, Any], lease: KeyLease
    ) -> dict[str, Any]:
        status_url = str(submitted["status_url"])
        try:
            return await self._follow_status_stream(status_url, lease)
        except (FalBrokenError, FalConnectError, _StatusStreamUnavailable, FalTimeout) as exc:
            log.info("status stream unavailable (%s); polling", type(exc).__name__)
        return await self._poll_status(status_url, lease)

    async def _follow_status_stream(self, status_url: str, lease: KeyLease) -> dict[str, Any]:
        response = await self._http.open(
            "GET", f"{status_url}/stream?logs=0", _headers(lease.key, accept="text/event-stream")
        )
        try:
            if response.status != 200:
                raise _StatusStreamUnavailable()
            decoder = SSEDecoder()
            while True:
                async with _deadline(self._timeouts.idle, "idle", None):
                    chunk = await response.read_chunk()
                events = decoder.feed(chunk) if chunk else decoder.close()
                for data in events:
                    status = _loads_object(data)
                    if status.get("status") == "COMPLETED":
                        # fal ends the stream right after; keep the connection for reuse.
                        response.finish_in_background()
                        return status
                if not chunk:
                    raise _StatusStreamUnavailable()
        finally:
            response.close()

    async def _poll_status(self, status_url: str, lease: KeyLease) -> dict[str, Any]:
        delay = 0.05
        while True:
            reply = await self._http.send("GET", f"{status_url}?logs=0", _headers(lease.key))
            if reply.status != 200:
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            status = _loads_object(reply.body)
            if status.get("status") == "COMPLETED":
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _fetch_result(
        self, submitted: Mapping[str, Any], lease: KeyLease, request_id: str
    ) -> dict[str, Any]:
        reply = await self._http.send("GET", str(submitted["response_url"]), _headers(lease.key))
        if reply.status != 200:
            raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
        output = _loads_object(reply.body)
        _raise_if_failed(output, request_id)
        return output

    async def _cancel(self, cancel_url: str, lease: KeyLease) -> None:
        try:
            async with asyncio.timeout(_CANCEL_TIMEOUT):
                reply = await self._http.send("PUT", cancel_url, _headers(lease.key))
            log.info("cancelled fal request (HTTP %d)", reply.status)
        except Exception as exc:  # best effort: the client is gone either way
            log.warning("could not cancel fal request: %s", type(exc).__name__)

    # -- keys and retries -------------------------------------------------------------------

    async def _start(
        self,
        attempt_fn: Callable[[KeyLease], Awaitable[T]],
        client_key: str | None,
        total_deadline: float,
    ) -> tuple[T, KeyLease]:
        """Run one fal call that starts work, with key failover and retries."""
        loop = asyncio.get_running_loop()
        retry_deadline = min(loop.time() + self._timeouts.retry_budget, total_deadline)
        refused: set[int] = set()
        try:
            # The common case pays for no retry machinery.
            return await self._attempt(attempt_fn, client_key, refused)
        except Exception as exc:
            if loop.time() >= retry_deadline:
                raise
            first_failure: Exception | None = exc
        failures = 0

        def backoff(exc: Exception) -> bool | float:
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
            self._note_failure(lease, exc, refused)
            raise

    async def _lease(self, client_key: str | None, refused: frozenset[int]) -> KeyLease:
        if self._pool is None:
            if client_key is None:
                raise FalError(401, "no fal key: send your fal key as the Bearer token")
            return single_key_lease(client_key)
        return await self._pool.acquire(refused)

    def _note_failure(self, lease: KeyLease, exc: BaseException, refused: set[int]) -> None:
        if isinstance(exc, FalError):
            self._metrics.upstream_errors.labels(exc.kind).inc()
            if self._pool is not None and lease.pool is not None:
                if exc.status in (401, 403):
                    refused.add(lease.index)
                    self._pool.mark_refused(lease.index)
                elif exc.status == 429:
                    self._pool.mark_rate_limited(lease.index, exc.retry_after)
        elif isinstance(exc, FalTimeout | FalConnectError | FalBrokenError):
            self._metrics.upstream_errors.labels(type(exc).__name__).inc()

    def _retry_backoff(
        self, exc: Exception, budget_left: float, refused: frozenset[int]
    ) -> bool | float:
        """False: give up. True: back off exponentially. A float: wait that long."""
        if isinstance(exc, FalTLSError):
            return False
        if isinstance(exc, FalConnectError) or (
            isinstance(exc, FalTimeout) and exc.which == "connect"
        ):
            return True
        if not isinstance(exc, FalError) or exc.retryable is False:
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


class FalStream:
    """fal's events for one `/stream` call, with first-event, idle and total timeouts.

    `events()` yields each event as a dict, and `None` each keep-alive interval without one.
    """

    __slots__ = (
        "_closed", "_first_deadline", "_lease", "_response", "_timeouts", "_total_deadline",
        "request_id",
    )  # fmt: skip

    def __init__(
        self,
        response: OpenResponse,
        lease: KeyLease,
        *,
        timeouts: Timeouts,
        first_deadline: float,
        total_deadline: float,
    ) -> None:
        self._response = response
        self._lease = lease
        self._timeouts = timeouts
        self._first_deadline = first_deadline
        self._total_deadline = total_deadline
        self._closed = False
        self.request_id = response.headers.get("x-fal-request-id")

    async def events(self) -> AsyncIterator[dict[str, Any] | None]:
        loop = asyncio.get_running_loop()
        decoder = SSEDecoder()
        event_deadline = self._first_deadline
        which = "first_event"
        while True:
            keepalive_at = loop.time() + self._timeouts.keepalive
            deadline = min(event_deadline, self._total_deadline, keepalive_at)
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await self._response.read_chunk()
            except TimeoutError:
                now = loop.time()
                if now >= self._total_deadline:
                    raise FalTimeout("total", self._timeouts.total) from None
                if now >= event_deadline:
                    seconds = (
                        self._timeouts.first_event
                        if which == "first_event"
                        else self._timeouts.idle
                    )
                    raise FalTimeout(which, seconds) from None
                yield None
                continue
            events = decoder.feed(chunk) if chunk else decoder.close()
            for data in events:
                yield _loads_object(data)
            if events:
                event_deadline = loop.time() + self._timeouts.idle
                which = "idle"
            if not chunk:
                return

    def close(self) -> None:
        """Close the connection (fal cancels the work) and free the key. Idempotent."""
        if not self._closed:
            self._closed = True
            self._response.close()
            self._lease.release()


class _StatusStreamUnavailable(Exception):
    pass


def _headers(key: str, accept: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Key {key}", "Content-Type": "application/json", "Accept": accept}


def _is_event_stream(headers: Mapping[str, str]) -> bool:
    return "text/event-stream" in headers.get("content-type", "")


async def _error_from(response: OpenResponse, lease: KeyLease) -> Exception:
    try:
        body = await response.read_body()
    finally:
        response.close()
    if response.status == 200:
        return FalBrokenError("fal answered the stream call without an event stream")
    return parse_error_response(response.status, response.headers, body, lease.index)


def _parse_submit(body: bytes) -> dict[str, Any]:
    submitted = _loads_object(body)
    for field in ("request_id", "status_url", "response_url", "cancel_url"):
        if not isinstance(submitted.get(field), str):
            raise FalBrokenError(f"fal's queue answer has no {field}")
    return submitted


def _raise_if_failed(status: Mapping[str, Any], request_id: str) -> None:
    """A failed queue request still reaches COMPLETED, with `error` set."""
    error = status.get("error")
    if error:
        error_type = status.get("error_type")
        code = _ERROR_TYPE_STATUS.get(str(error_type), 500)
        raise FalError(
            code,
            str(error),
            error_type=str(error_type) if error_type else None,
            request_id=request_id,
        )


def _loads_object(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise FalBrokenError("fal sent data that is not JSON") from None
    if not isinstance(value, dict):
        raise FalBrokenError("fal sent JSON that is not an object")
    return value


class _deadline:  # lower case: used like asyncio.timeout()
    """A timeout that raises FalTimeout naming which limit expired: `seconds` from now, or
    the request's `total_deadline` (`total_seconds` after it began) if that comes first.

    A class rather than an @asynccontextmanager: it runs several times per request.
    """

    __slots__ = ("_at", "_own", "_seconds", "_timeout", "_total", "_total_seconds", "_which")

    def __init__(
        self, seconds: float, which: str, total_deadline: float | None, total_seconds: float = 0.0
    ) -> None:
        self._seconds = seconds
        self._own = asyncio.get_running_loop().time() + seconds
        self._at = self._own if total_deadline is None else min(self._own, total_deadline)
        self._total = total_deadline
        self._which = which
        self._total_seconds = total_seconds
        self._timeout = asyncio.timeout_at(self._at)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._timeout.__aexit__(kind, exc, tb)
        except TimeoutError:
            if self._total is not None and self._at == self._total < self._own:
                raise FalTimeout("total", self._total_seconds) from None
            raise FalTimeout(self._which, self._seconds) from None


async def _shielded(coro: Awaitable[None]) -> None:
    """Run cleanup to the end even if the caller is being cancelled."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


__all__ = ["FalClient", "FalStream", "KeysUnavailable", "QueueResult", "Timeouts"]
