"""Queue jobs that outlive the request that made them (videos): submit now, and later, from
any replica, ask the status, fetch the result or cancel, knowing only the app, fal's request
id and which key submitted it.

The submit starts work, so it goes through `CallStarter` (key choice, failover, the retries
of docs/fal-protocol.md §5) and releases its key at once: fal holds the job, not this
process. The later calls read or cancel work fal already has, so they are retried as polls
(`with_poll_retries`). They build the per-request URLs from the app's `owner/alias`, which
drops the sub-path (docs/fal-protocol.md §1), as fal's clients do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from ..base.metrics import Metrics
from .decode import loads_object
from .errors import FalBrokenError, FalStatusError, parse_error_response
from .keys import KeyLease
from .retry import CANCEL_RETRIES, RESULT_RETRIES, STATUS_RETRIES, CallStarter, with_poll_retries
from .timeouts import deadline
from .transport import Reply, Transport
from .wire import is_success, key_headers

# Namespaces that add a leading segment to an app id (docs/fal-protocol.md §1).
_NAMESPACES = frozenset({"workflows", "comfy"})


# What a poll is tried again on (fal-js's status policy, docs/fal-protocol.md §5).
_POLL_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class SubmittedJob:
    request_id: str
    key_index: int  # the pool's key that submitted it; -1: the client's own key


def app_base(app_id: str) -> str:
    """`fal-ai/veo3.1/fast` -> `fal-ai/veo3.1`: the part the per-request URLs keep."""
    segments = app_id.split("/")
    n = 3 if segments[0] in _NAMESPACES else 2
    return "/".join(segments[:n])


class FalJobs:
    def __init__(
        self,
        *,
        queue_url: str,
        http: Transport,
        starter: CallStarter,
        metrics: Metrics,
        timeout: float,
    ) -> None:
        """`timeout`: seconds for fal to answer one call (FIRST_EVENT_TIMEOUT); a status,
        result or cancel gets twice that in all, its retries included."""
        self._queue_url = queue_url
        self._http = http
        self._starter = starter
        self._metrics = metrics
        self._timeout = timeout

    async def submit(
        self, app: str, payload: dict[str, Any], client_key: str | None
    ) -> SubmittedJob:
        """POST {queue}/{app}; fal's answer carries the request id (docs/fal-protocol.md §3.3)."""
        loop = asyncio.get_running_loop()
        total_deadline = loop.time() + 2 * self._timeout
        body = orjson.dumps(payload)
        url = f"{self._queue_url}/{app}"

        async def attempt(lease: KeyLease) -> str:
            async with deadline(self._timeout, "first_event", total_deadline, 2 * self._timeout):
                reply = await self._http.send("POST", url, key_headers(lease.key), body)
            if not is_success(reply.status):
                raise parse_error_response(reply.status, reply.headers, reply.body, lease.index)
            request_id = loads_object(reply.body).get("request_id")
            if not isinstance(request_id, str) or not request_id:
                raise FalBrokenError("fal's queue answer has no request_id")
            return request_id

        request_id, lease = await self._starter.start(attempt, client_key, total_deadline)
        lease.release()  # the job waits at fal, not here
        return SubmittedJob(request_id, lease.index)

    def _url(self, app: str, request_id: str, suffix: str = "") -> str:
        return f"{self._queue_url}/{app_base(app)}/requests/{request_id}{suffix}"

    async def status(self, app: str, request_id: str, key: str) -> dict[str, Any]:
        """fal's status object: IN_QUEUE, IN_PROGRESS or COMPLETED (docs/fal-protocol.md §3.3)."""
        url = self._url(app, request_id, "/status?logs=0")
        reply = await self._poll("GET", url, key, STATUS_RETRIES)
        if not is_success(reply.status):
            raise parse_error_response(reply.status, reply.headers, reply.body)
        return loads_object(reply.body)

    async def result(
        self, app: str, request_id: str, key: str, *, failed: bool = False
    ) -> dict[str, Any]:
        """The output of a COMPLETED job; a failed job raises its own error (a 422 with the
        app's detail for invalid input, docs/fal-protocol.md §3.3). For a job whose status
        said it failed, the status code is the answer: only a lost connection is retried."""
        url = self._url(app, request_id)
        reply = await self._poll("GET", url, key, RESULT_RETRIES, retry_statuses=not failed)
        if not is_success(reply.status):
            error = parse_error_response(reply.status, reply.headers, reply.body)
            error.request_id = error.request_id or request_id
            raise error
        output = loads_object(reply.body)
        if output.get("error") and not output.get("video"):
            raise FalStatusError(500, str(output["error"]), request_id=request_id)
        return output

    async def cancel(self, app: str, request_id: str, key: str) -> int:
        """PUT cancel: 202 CANCELLATION_REQUESTED, or 400 ALREADY_COMPLETED; both settle it."""
        url = self._url(app, request_id, "/cancel")
        reply = await self._poll("PUT", url, key, CANCEL_RETRIES)
        if not is_success(reply.status) and reply.status != 400:
            raise parse_error_response(reply.status, reply.headers, reply.body)
        return reply.status

    async def _poll(
        self, method: str, url: str, key: str, retries: int, *, retry_statuses: bool = True
    ) -> Reply:
        headers = key_headers(key)
        total = 2 * self._timeout
        until = asyncio.get_running_loop().time() + total

        async def call() -> Reply:
            async with deadline(self._timeout, "first_event", until, total):
                reply = await self._http.send(method, url, headers)
            if retry_statuses and reply.status in _POLL_RETRY_STATUSES:
                raise parse_error_response(reply.status, reply.headers, reply.body)
            return reply

        return await with_poll_retries(call, retries, until, self._metrics)
