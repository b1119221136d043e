"""Queue API: submit, status, status stream, result and cancel."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

from .apps import APP_BASES, MEDIA_BASES
from .asgi import SSE_HEADERS, DisconnectWatch, Headers, SimulatedDrop, read_body
from .common import (
    Call,
    Invalid,
    Prepared,
    check_auth,
    parse_key,
    send_scripted_error,
    start_timeout,
)
from .directives import Directives, units_header
from .state import COMPLETED, IN_PROGRESS, IN_QUEUE, Job, SimulatorState
from .text import render

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# Operation suffix after ``requests/{id}`` -> (log kind, HTTP method).
_OPS: dict[tuple[str, ...], tuple[str, str]] = {
    (): ("result", "GET"),
    ("status",): ("status", "GET"),
    ("status", "stream"): ("status_stream", "GET"),
    ("cancel",): ("cancel", "PUT"),
}


def _origin(call: Call) -> str:
    host = call.headers.get("host")
    if not host:
        server = call.scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{call.scope.get('scheme', 'http')}://{host}"


async def submit(call: Call, state: SimulatorState, p: Prepared | Invalid) -> None:
    d = p.directives
    config = state.config
    latency_ms = config.latency_ms if d.latency_ms is None else d.latency_ms
    run_s = math.inf if d.hang is not None else latency_ms / 1000
    queue_s = (d.queue_ms or 0) / 1000
    limit = config.key_concurrency if isinstance(p, Prepared) else None
    if limit is not None and isinstance(p, Prepared):  # over the account's limit a job waits
        now = time.monotonic()
        queue_s = max(queue_s, state.queue_start(p.key, limit, now) - now)
    rid = call.request_id
    if isinstance(p, Invalid):
        # The queue takes any input; the runner's 422 is the result (docs/fal-protocol.md §3.3).
        job = Job(rid, p.app, None, None, d, queue_s, 0.0)
        job.fail(422, p.errors, "Unprocessable Entity", None)
    else:
        answer = render(p.inp, p.clean_prompt, p.app, d)
        job = Job(rid, p.app, p.inp, answer, d, queue_s, run_s)
    timeout = start_timeout(call)
    if timeout is not None and queue_s > timeout:
        job.expire_before_start(timeout)
    state.add_job(job)
    if limit is not None and isinstance(p, Prepared):
        state.key_jobs.setdefault(p.key, []).append(job)
    # fal drops the app sub-path in the per-request URLs (docs/fal-protocol.md §1).
    origin = d.queue_url_base or f"{_origin(call)}{config.queue_prefix}"
    url = f"{origin}/{p.app.base}/requests/{rid}"
    body = {
        "request_id": rid,
        "response_url": url,
        "status_url": url + "/status",
        "cancel_url": url + "/cancel",
        "status": "IN_QUEUE",
        "queue_position": 0,
    }
    await call.json(200, body)


async def request_op(
    call: Call, state: SimulatorState, base: str, request_id: str, op: tuple[str, ...]
) -> None:
    """Handle ``{queue}/{base}/requests/{id}[/status[/stream]|/cancel]``."""
    await read_body(call.receive)
    parse_key(call)
    kind, method = _OPS.get(op, ("unknown", ""))
    call.log(state, kind, base, None)
    if call.method != method:
        status, message = (405, "Method Not Allowed") if method else (404, "Not Found")
        await call.detail(status, message)
        return
    if not await check_auth(call, state):
        return
    if base not in APP_BASES and base not in MEDIA_BASES:
        await call.detail(404, f"Application '{base}' not found")
        return
    job = state.jobs.get(request_id)
    if job is None or job.app.base != base:
        await call.detail(404, f"Request '{request_id}' not found")
        return
    if await _scripted_poll_failure(call, job, kind):
        return
    if kind == "status":
        await _status(call, job)
    elif kind == "status_stream":
        await _status_stream(call, state, job)
    elif kind == "result":
        await _result(call, job)
    else:
        await _cancel(call, state, job)


async def _scripted_poll_failure(call: Call, job: Job, kind: str) -> bool:
    """`poll_fail`: the first N calls of one kind fail, as nginx would answer, or dropped."""
    fail = job.directives.poll_fail
    op = "status" if kind == "status_stream" else kind
    if fail is None or fail.op != op or job.poll_failures >= fail.times:
        return False
    if kind == "status_stream":
        await call.detail(404, "Not Found")  # so that the client polls, where the failures are
        return True
    job.poll_failures += 1
    if fail.status < 0:  # no answer at all: the client's own timeout ends it
        watch = DisconnectWatch(call.receive)
        try:
            if not await watch.pause(60.0):
                await call.detail(504, "Gateway Timeout")
        finally:
            watch.stop()
        return True
    if fail.status == 0:
        raise SimulatedDrop
    await send_scripted_error(call, Directives(status=fail.status, ingress=True))
    return True


def _logs_flag(call: Call) -> bool | None:
    """Parse ``?logs=`` like FastAPI's bool; None if invalid."""
    query = call.scope.get("query_string", b"").decode("latin-1")
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "logs":
            value = value.lower()
            return True if value in _TRUE else False if value in _FALSE else None
    return False


async def _status(call: Call, job: Job) -> None:
    if _logs_flag(call) is None:
        item = {
            "loc": ["query", "logs"],
            "msg": "Input should be a valid boolean, unable to interpret input",
            "type": "bool_parsing",
        }
        await call.json(422, {"detail": [item]})
        return
    body = job.status_body(time.monotonic())
    # 202 while the request is queued or running, 200 once it is done (docs/fal-protocol.md §3.3).
    await call.json(202 if body["status"] in (IN_QUEUE, IN_PROGRESS) else 200, body)


async def _status_stream(call: Call, state: SimulatorState, job: Job) -> None:
    if not job.directives.status_stream:
        await call.detail(404, "Not Found")
        return
    headers = [*SSE_HEADERS, *call.id_header]
    watch = DisconnectWatch(call.receive)
    await call.send({"type": "http.response.start", "status": 200, "headers": headers})
    state.open_streams += 1
    try:
        last: str | None = None
        while True:
            now = time.monotonic()
            body = job.status_body(now)
            if body["status"] != last:
                last = body["status"]
                chunk = b"data: " + orjson.dumps(body) + b"\n\n"
                await call.send({"type": "http.response.body", "body": chunk, "more_body": True})
            if last not in (IN_QUEUE, IN_PROGRESS):
                break
            if await watch.pause(job.next_change(now), job.changed()):
                call.log_disconnect(state)
                return
        watch.stop()
        await call.send({"type": "http.response.body", "body": b""})
    finally:
        watch.stop()
        state.open_streams -= 1


async def _result(call: Call, job: Job) -> None:
    if job.status(time.monotonic()) != COMPLETED:
        await call.detail(400, "Request is still in progress")
        return
    if job.error is None and job.answer is not None:
        # fal sends the billable units on the result (docs/fal-protocol.md §14.2).
        units = job.directives.billable_units
        if units is None:
            units = getattr(job.answer, "billable_units", None)
        await call.json(200, job.answer.body(), units_header(units))
        return
    # What fal_client's `_raise_for_status` reads: the status, `detail`, and `error_type` from
    # the body or the `x-fal-error-type` header (docs/fal-protocol.md §4.2).
    body: dict[str, Any] = {"detail": job.result_detail}
    headers: Headers = []
    if job.error_type is not None:
        body["error_type"] = job.error_type
        headers.append((b"x-fal-error-type", job.error_type.encode()))
    if job.user_timeout:
        headers.append((b"x-fal-request-timeout-type", b"user"))
    await call.json(job.result_status, body, headers)


async def _cancel(call: Call, state: SimulatorState, job: Job) -> None:
    now = time.monotonic()
    if job.status(now) == COMPLETED:
        await call.json(400, {"status": "ALREADY_COMPLETED"})
        return
    job.cancel(now)
    state.record_event("cancelled", request_id=job.request_id)
    await call.json(202, {"status": "CANCELLATION_REQUESTED"})
