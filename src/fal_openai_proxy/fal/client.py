"""fal's protocol for one request: a direct `/stream` call, or the queue (submit, status,
result, cancel). Starting a call (keys, failover, retries) is `retry.py`'s job; reading a
stream is `stream.py`'s; the bytes go through a `Transport` (`http.HttpClient`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .. import __version__
from ..base.metrics import Metrics
from ..base.settings import DEFAULT_QUEUE_URL
from .decode import loads_object
from .errors import (
    FalBrokenError,
    FalConnectError,
    FalStatusError,
    FalTimeout,
    FalTransportError,
    parse_error_response,
)
from .keys import KeyLease, KeyPool
from .retry import (
    CANCEL_RETRIES,
    RESULT_RETRIES,
    STATUS_RETRIES,
    CallStarter,
    with_poll_retries,
)
from .sse import SSEDecoder
from .stream import FalStream
from .timeouts import FalClock, Timeouts, shielded
from .transport import Reply, StreamingResponse, Transport
from .urls import QueueURLs
from .wire import billable_units, is_success, key_headers

log = logging.getLogger(__name__)

USER_AGENT = f"fal-openai-proxy/{__version__}"
# The statuses of a request still waiting (docs/fal-protocol.md §3.3).
_WAITING = frozenset({"IN_QUEUE", "IN_PROGRESS"})
# fal's queue `error_type` values and the status each stands for (docs/fal-protocol.md §4.3).
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
_CANCEL_TIMEOUT = 5.0


@dataclass(frozen=True)
class QueueResult:
    output: dict[str, Any]
    request_id: str
    # fal's `x-fal-billable-units` on the answer that carried the output
    # (docs/fal-protocol.md §14.2); None when fal sent none.
    billable_units: float | None = None


class FalClient:
    def __init__(
        self,
        *,
        run_url: str,
        queue_url: str,
        http: Transport,
        pool: KeyPool | None,
        timeouts: Timeouts,
        metrics: Metrics,
    ) -> None:
        self._run_url = run_url
        self._queue_url = queue_url
        self._http = http
        self._timeouts = timeouts
        self._metrics = metrics
        self._starter = CallStarter(pool, timeouts.retry_budget, metrics)
        self._urls = QueueURLs(
            queue_url=queue_url, run_url=run_url, default_queue_url=DEFAULT_QUEUE_URL
        )

    # -- streams ----------------------------------------------------------------------------

    async def open_stream(
        self, app: str, payload: Mapping[str, Any], client_key: str | None
    ) -> FalStream:
        """POST {run}/{app}/stream and wait until fal answers 200 with an event stream."""
        loop = asyncio.get_running_loop()
        timeouts = self._timeouts
        total_deadline = loop.time() + timeouts.total
        url = f"{self._run_url}/{app}/stream"
        body = orjson.dumps(payload)
        clock = FalClock(total_deadline, timeouts.total)  # the stream's one timer from now on

        async def attempt(lease: KeyLease) -> StreamingResponse:
            left = total_deadline - loop.time()
            headers = key_headers(lease.key, accept="text/event-stream", time_left=left)
            try:
                with clock.limit(timeouts.first_event, "first_event"):
                    response = await self._http.open("POST", url, headers, body)
                    if not is_success(response.status) or not _is_event_stream(response.headers):
                        raise await _error_from(response, lease)
            except TimeoutError:
                raise clock.timeout() from None
            return response

        try:
            response, lease = await self._starter.start(attempt, client_key, total_deadline)
        except BaseException:
            clock.close()
            raise
        return FalStream(response, lease, timeouts=timeouts, clock=clock)

    # -- direct run -------------------------------------------------------------------------

    async def run_direct(
        self, app: str, payload: Mapping[str, Any], client_key: str | None
    ) -> QueueResult:
        """POST {run}/{app}: one round trip (docs/fal-protocol.md §3.1).

        Retried as fal_client retries `run` (408, 409, 429 such as fal's concurrency limit,
        ingress 5xx). A caller that is cancelled closes the connection, and fal cancels the work.
        """
        loop = asyncio.get_running_loop()
        total_deadline = loop.time() + self._timeouts.total
        url = f"{self._run_url}/{app}"
        body = orjson.dumps(payload)
        clock = FalClock(total_deadline, self._timeouts.total)

        async def attempt(lease: KeyLease) -> QueueResult:
            headers = key_headers(lease.key, time_left=total_deadline - loop.time())
            try:
                with clock.limit(None, "total"):
                    reply = await self._http.send("POST", url, headers, body)
            except TimeoutError:
                raise clock.timeout() from None
            if not is_success(reply.status):
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            request_id = reply.headers.get("x-fal-request-id", "")
            output = loads_object(reply.body)
            _raise_if_failed(output, request_id or None)
            return QueueResult(output, request_id, billable_units(reply.headers))

        try:
            result, lease = await self._starter.start(attempt, client_key, total_deadline)
        finally:
            clock.close()
        lease.release()
        return result

    # -- queue ------------------------------------------------------------------------------

    async def run_queued(
        self, app: str, payload: Mapping[str, Any], client_key: str | None
    ) -> QueueResult:
        """Submit to fal's queue, follow the status to COMPLETED, fetch the result.

        If the caller is cancelled (the client went away) or a timeout expires before the
        result, the fal request is cancelled with PUT cancel_url. One timer for all of the
        request's deadlines (`FalClock`).
        """
        loop = asyncio.get_running_loop()
        timeouts = self._timeouts
        total_deadline = loop.time() + timeouts.total
        body = orjson.dumps(payload)
        url = f"{self._queue_url}/{app}"
        clock = FalClock(total_deadline, timeouts.total)

        async def attempt(lease: KeyLease) -> _Submitted:
            headers = key_headers(lease.key, time_left=total_deadline - loop.time())
            try:
                with clock.limit(timeouts.first_event, "first_event"):
                    reply = await self._http.send("POST", url, headers, body)
            except TimeoutError:
                raise clock.timeout() from None
            # Any 2xx is success: fal-js accepts `response.ok` (libs/client/src/response.ts).
            if not is_success(reply.status):
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            return self._parse_submit(reply.body)

        try:
            submitted, lease = await self._starter.start(attempt, client_key, total_deadline)
        except BaseException:
            clock.close()
            raise
        done = False
        try:
            try:
                status = await self._wait_for_completion(submitted, lease, clock)
                done = True
                with clock.limit(None, "total"):
                    output, units = await self._fetch_result(
                        submitted, lease, status, total_deadline
                    )
            except TimeoutError:
                raise clock.timeout() from None
            return QueueResult(output, submitted.request_id, units)
        except BaseException:
            if not done:
                await shielded(self._cancel(submitted.cancel_url, lease))
            raise
        finally:
            clock.close()
            lease.release()

    def _parse_submit(self, body: bytes) -> _Submitted:
        submitted = loads_object(body)
        for field in ("request_id", "status_url", "response_url", "cancel_url"):
            if not isinstance(submitted.get(field), str):
                raise FalBrokenError(f"fal's queue answer has no {field}")
        follow = self._urls.follow
        return _Submitted(
            str(submitted["request_id"]),
            follow(submitted["status_url"]),
            follow(submitted["response_url"]),
            follow(submitted["cancel_url"]),
        )

    async def _wait_for_completion(
        self, submitted: _Submitted, lease: KeyLease, clock: FalClock
    ) -> dict[str, Any]:
        """The final status: from the status stream, else by polling. TimeoutError when the
        total deadline passes (the caller names it)."""
        status_url = submitted.status_url
        try:
            with clock.limit(self._timeouts.idle, "idle"):
                status = await self._follow_status_stream(status_url, lease, clock)
        except TimeoutError:
            if clock.timeout().which != "idle":
                raise
            log.info("status stream unavailable (idle); polling")
        except (FalBrokenError, FalConnectError, _StatusStreamUnavailable, FalTimeout) as exc:
            log.info("status stream unavailable (%s); polling", type(exc).__name__)
        else:
            _check_status(status, submitted.request_id)
            return status
        with clock.limit(None, "total"):
            return await self._poll_status(
                status_url, lease, submitted.request_id, clock.total_deadline
            )

    async def _follow_status_stream(
        self, status_url: str, lease: KeyLease, clock: FalClock
    ) -> dict[str, Any]:
        """Inside the clock's block: IDLE_TIMEOUT from each read's start."""
        response = await self._http.open(
            "GET", f"{status_url}/stream?logs=0", key_headers(lease.key, accept="text/event-stream")
        )
        idle = self._timeouts.idle
        try:
            if not is_success(response.status):
                raise _StatusStreamUnavailable()
            decoder = SSEDecoder(self._timeouts.max_event_bytes)
            while True:
                clock.limit(idle, "idle")
                chunk = await response.read_chunk()
                events = decoder.feed(chunk) if chunk else decoder.close()
                for data in events:
                    status = loads_object(data)
                    if status.get("status") not in _WAITING:
                        if status.get("status") == "COMPLETED":
                            # fal ends the stream right after; keep the connection for reuse.
                            response.finish_in_background()
                        return status
                if not chunk:
                    raise _StatusStreamUnavailable()
        finally:
            response.close()

    async def _poll_status(
        self, status_url: str, lease: KeyLease, request_id: str, until: float
    ) -> dict[str, Any]:
        url = f"{status_url}?logs=0"
        headers = key_headers(lease.key)

        async def poll() -> dict[str, Any]:
            reply = await self._http.send("GET", url, headers)
            # fal answers 202 while the request is queued or running, 200 once completed.
            if not is_success(reply.status):
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            return loads_object(reply.body)

        delay = 0.05
        while True:
            status = await with_poll_retries(poll, STATUS_RETRIES, until, self._metrics)
            if status.get("status") not in _WAITING:
                _check_status(status, request_id)
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _fetch_result(
        self, submitted: _Submitted, lease: KeyLease, status: Mapping[str, Any], until: float
    ) -> tuple[dict[str, Any], float | None]:
        """The output and the billable units the result answer carries (docs/fal-protocol.md
        §14.2); or, for a failed request, the error the result call answers with.

        A failed request still reaches COMPLETED, with `error` set in the status; its result
        answers with the real HTTP status and `detail` (a 422 for invalid input), which is
        what fal_client's `_raise_for_status` reports. `error_type` is only the fallback when
        that answer cannot be had.
        """
        failed = bool(status.get("error"))
        headers = key_headers(lease.key)

        async def fetch() -> Reply:
            reply = await self._http.send("GET", submitted.response_url, headers)
            if not is_success(reply.status) and not failed:
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            return reply

        try:
            # For a failed request the status code is the answer: only a lost connection is
            # worth another try.
            reply = await with_poll_retries(
                fetch, RESULT_RETRIES, until, self._metrics, statuses=not failed
            )
        except (FalTransportError, FalStatusError):
            if failed:
                _raise_if_failed(status, submitted.request_id)
            raise
        if not is_success(reply.status):
            error = parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            error.request_id = error.request_id or submitted.request_id
            if error.error_type is None:
                error.error_type = _str_or_none(status.get("error_type"))
            raise error
        if failed:
            _raise_if_failed(status, submitted.request_id)
        output = loads_object(reply.body)
        _raise_if_failed(output, submitted.request_id)
        return output, billable_units(reply.headers)

    async def _cancel(self, cancel_url: str, lease: KeyLease) -> None:
        headers = key_headers(lease.key)

        async def cancel() -> int:
            reply = await self._http.send("PUT", cancel_url, headers)
            # 202 CANCELLATION_REQUESTED, or 400 ALREADY_COMPLETED: both settle it
            # (https://docs.fal.ai/documentation/deployment/requests).
            if not is_success(reply.status) and reply.status != 400:
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            return reply.status

        try:
            async with asyncio.timeout(_CANCEL_TIMEOUT):
                until = asyncio.get_running_loop().time() + _CANCEL_TIMEOUT
                code = await with_poll_retries(cancel, CANCEL_RETRIES, until, self._metrics)
            log.info("cancelled fal request (HTTP %d)", code)
        except Exception as exc:  # best effort: the client is gone either way
            log.warning("could not cancel fal request: %s", type(exc).__name__)


class _StatusStreamUnavailable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Submitted:
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


def _is_event_stream(headers: Mapping[str, str]) -> bool:
    return "text/event-stream" in headers.get("content-type", "")


async def _error_from(response: StreamingResponse, lease: KeyLease) -> Exception:
    try:
        body = await response.read_body()
    finally:
        response.close()
    if is_success(response.status):
        return FalBrokenError("fal answered the stream call without an event stream")
    return parse_error_response(response.status, response.headers, body, lease.index)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _check_status(status: Mapping[str, Any], request_id: str) -> None:
    """A status that ended the wait but is not COMPLETED (`CANCELLED`, an unknown one)."""
    name = status.get("status")
    if name != "COMPLETED":
        raise FalStatusError(
            502,
            f"fal's queue reported status {str(name)[:40]!r} instead of COMPLETED",
            error_type=_str_or_none(status.get("error_type")),
            request_id=request_id,
        )


def _raise_if_failed(status: Mapping[str, Any], request_id: str | None) -> None:
    """A failed queue request still reaches COMPLETED, with `error` set; its `error_type`
    stands for a status (docs/fal-protocol.md §4.3)."""
    error = status.get("error")
    if error:
        error_type = _str_or_none(status.get("error_type"))
        code = _ERROR_TYPE_STATUS.get(str(error_type), 500)
        raise FalStatusError(code, str(error), error_type=error_type, request_id=request_id)


__all__ = ["FalClient", "FalStream", "QueueResult", "Timeouts"]
