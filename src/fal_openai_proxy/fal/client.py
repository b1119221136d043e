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
from ..metrics import Metrics
from .decode import loads_object
from .errors import (
    FalBrokenError,
    FalConnectError,
    FalStatusError,
    FalTimeout,
    parse_error_response,
)
from .keys import KeyLease, KeyPool
from .retry import CallStarter
from .sse import SSEDecoder
from .stream import FalStream
from .timeouts import Timeouts, deadline, shielded
from .transport import StreamingResponse, Transport

log = logging.getLogger(__name__)

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
_CANCEL_TIMEOUT = 5.0


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
        http: Transport,
        pool: KeyPool | None,
        timeouts: Timeouts,
        metrics: Metrics,
    ) -> None:
        self._run_url = run_url
        self._queue_url = queue_url
        self._http = http
        self._timeouts = timeouts
        self._starter = CallStarter(pool, timeouts.retry_budget, metrics)

    # -- streams ----------------------------------------------------------------------------

    async def open_stream(
        self, app: str, payload: Mapping[str, Any], client_key: str | None
    ) -> FalStream:
        """POST {run}/{app}/stream and wait until fal answers 200 with an event stream."""
        loop = asyncio.get_running_loop()
        total_deadline = loop.time() + self._timeouts.total
        url = f"{self._run_url}/{app}/stream"
        body = orjson.dumps(payload)

        async def attempt(lease: KeyLease) -> StreamingResponse:
            headers = _headers(lease.key, accept="text/event-stream")
            async with deadline(
                self._timeouts.first_event, "first_event", total_deadline, self._timeouts.total
            ):
                response = await self._http.open("POST", url, headers, body)
                if response.status != 200 or not _is_event_stream(response.headers):
                    raise await _error_from(response, lease)
            return response

        response, lease = await self._starter.start(attempt, client_key, total_deadline)
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
            async with deadline(
                self._timeouts.first_event, "first_event", total_deadline, self._timeouts.total
            ):
                reply = await self._http.send("POST", url, _headers(lease.key), body)
            if reply.status != 200:
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            return _parse_submit(reply.body)

        submitted, lease = await self._starter.start(attempt, client_key, total_deadline)
        request_id = str(submitted["request_id"])
        done = False
        try:
            async with deadline(
                self._timeouts.total, "total", total_deadline, self._timeouts.total
            ):
                status = await self._wait_for_completion(submitted, lease)
                done = True
                _raise_if_failed(status, request_id)
                output = await self._fetch_result(submitted, lease, request_id)
            return QueueResult(output, request_id)
        except BaseException:
            if not done:
                await shielded(self._cancel(submitted["cancel_url"], lease))
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
                async with deadline(self._timeouts.idle, "idle", None):
                    chunk = await response.read_chunk()
                events = decoder.feed(chunk) if chunk else decoder.close()
                for data in events:
                    status = loads_object(data)
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
            status = loads_object(reply.body)
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
        output = loads_object(reply.body)
        _raise_if_failed(output, request_id)
        return output

    async def _cancel(self, cancel_url: str, lease: KeyLease) -> None:
        try:
            async with asyncio.timeout(_CANCEL_TIMEOUT):
                reply = await self._http.send("PUT", cancel_url, _headers(lease.key))
            log.info("cancelled fal request (HTTP %d)", reply.status)
        except Exception as exc:  # best effort: the client is gone either way
            log.warning("could not cancel fal request: %s", type(exc).__name__)


class _StatusStreamUnavailable(Exception):
    pass


def _headers(key: str, accept: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Key {key}", "Content-Type": "application/json", "Accept": accept}


def _is_event_stream(headers: Mapping[str, str]) -> bool:
    return "text/event-stream" in headers.get("content-type", "")


async def _error_from(response: StreamingResponse, lease: KeyLease) -> Exception:
    try:
        body = await response.read_body()
    finally:
        response.close()
    if response.status == 200:
        return FalBrokenError("fal answered the stream call without an event stream")
    return parse_error_response(response.status, response.headers, body, lease.index)


def _parse_submit(body: bytes) -> dict[str, Any]:
    submitted = loads_object(body)
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
        raise FalStatusError(
            code,
            str(error),
            error_type=str(error_type) if error_type else None,
            request_id=request_id,
        )


__all__ = ["FalClient", "FalStream", "QueueResult", "Timeouts"]
