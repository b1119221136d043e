"""Mutable simulator state: config, request log, attempt counters, queue jobs, gauges."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from .apps import AppSpec
from .config import SimulatorConfig
from .directives import Directives
from .text import Answer
from .validation import ChatInput

IN_QUEUE = "IN_QUEUE"
# The status a failed request's result answers with, by error_type (docs/fal-protocol.md §4.3).
ERROR_TYPE_STATUS = {
    "request_timeout": 504,
    "startup_timeout": 504,
    "runner_scheduling_failure": 503,
    "runner_connection_timeout": 503,
    "runner_disconnected": 503,
    "runner_connection_refused": 503,
    "runner_connection_error": 503,
    "runner_incomplete_response": 502,
    "runner_server_error": 500,
    "client_disconnected": 499,
    "client_cancelled": 499,
    "bad_request": 400,
    "internal_error": 500,
}
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"


class Job:
    """A queue request. Its status is derived from timestamps, so no task runs per job."""

    __slots__ = (
        "_changed",
        "answer",
        "app",
        "cancelled_at",
        "directives",
        "done_at",
        "error",
        "error_type",
        "inp",
        "poll_failures",
        "request_id",
        "result_detail",
        "result_status",
        "started_at",
        "user_timeout",
    )

    def __init__(
        self,
        request_id: str,
        app: AppSpec,
        inp: ChatInput | None,
        answer: Answer | None,
        directives: Directives,
        queue_s: float,
        run_s: float,
    ) -> None:
        now = time.monotonic()
        self.request_id = request_id
        self.app = app
        self.inp = inp
        self.answer = answer
        self.directives = directives
        self.started_at = now + queue_s
        self.done_at = self.started_at + run_s  # math.inf for a hanging job
        self.cancelled_at: float | None = None
        self.error = directives.job_error
        self.error_type: str | None = None
        self.result_status = 200
        self.result_detail: Any = self.error
        if self.error is not None:
            self.error_type = directives.error_type or "runner_server_error"
            self.result_status = ERROR_TYPE_STATUS.get(self.error_type, 500)
        self.poll_failures = 0
        self.user_timeout = False  # failed by the client's X-Fal-Request-Timeout
        self._changed: asyncio.Future[None] | None = None

    def expire_before_start(self, timeout: float) -> None:
        """`X-Fal-Request-Timeout` shorter than the queue wait: the request ends at the
        timeout without running, answering 504 marked as the user's timeout."""
        self.started_at = self.done_at = min(self.started_at, time.monotonic() + timeout)
        self.fail(504, "Request timed out before it started", "Request timed out",
                  "request_timeout")  # fmt: skip
        self.user_timeout = True

    def fail(self, status: int, detail: Any, message: str, error_type: str | None) -> None:
        """Make the request fail: its status carries `message`, its result `status`+`detail`."""
        self.error, self.error_type = message, error_type
        self.result_status, self.result_detail = status, detail

    def status(self, now: float) -> str:
        if self.cancelled_at is not None or now >= self.done_at:
            return COMPLETED
        return IN_QUEUE if now < self.started_at else IN_PROGRESS

    def end(self) -> float:
        return self.done_at if self.cancelled_at is None else min(self.done_at, self.cancelled_at)

    def next_change(self, now: float) -> float:
        """Seconds until the status changes on its own (``inf`` if never)."""
        if self.cancelled_at is not None or now >= self.done_at:
            return math.inf
        return (self.started_at if now < self.started_at else self.done_at) - now

    def status_body(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        if status == IN_QUEUE:
            return {"status": IN_QUEUE, "queue_position": 0}
        if status == IN_PROGRESS:
            return {"status": IN_PROGRESS, "logs": None}
        end = self.cancelled_at if self.cancelled_at is not None else self.done_at
        elapsed = max(0.0, end - self.started_at)
        body: dict[str, Any] = {
            "status": self.directives.final_status or COMPLETED,
            "logs": None,
            "metrics": {"inference_time": round(elapsed, 6)},
        }
        if self.error is not None:
            body["error"] = self.error
            body["error_type"] = self.error_type
        return body

    def cancel(self, now: float) -> None:
        self.cancelled_at = now
        self.fail(499, "Request was cancelled by the client", "Request was cancelled by the client",
                  "client_cancelled")  # fmt: skip
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    def changed(self) -> asyncio.Future[None]:
        """A future resolved at the next out-of-band change (a cancel)."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed


@dataclass
class SimulatorState:
    """Everything tests inspect: reachable as ``app.simulator_state``."""

    config: SimulatorConfig = field(default_factory=SimulatorConfig)
    log: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    open_streams: int = 0
    in_flight: int = 0
    key_in_flight: dict[str, int] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # media: bytes, type
    # With ``key_concurrency``: the most calls one key had at fal at once (running, plus the
    # direct call arriving, even if refused), the direct calls refused with 429, and each
    # key's queue jobs that may still hold a slot.
    key_peak: dict[str, int] = field(default_factory=dict)
    key_refused: dict[str, int] = field(default_factory=dict)
    key_jobs: dict[str, list[Job]] = field(default_factory=dict)

    def running_jobs(self, key: str, now: float) -> int:
        return sum(1 for job in self.key_jobs.get(key, ()) if job.status(now) == IN_PROGRESS)

    def queue_start(self, key: str, limit: int, now: float) -> float:
        """When a job submitted now may start: at once, or when the slot it waits for frees.

        Jobs are scheduled in order of submission; a cancel frees its slot for later
        submissions only (jobs already waiting keep their start). Direct calls are not seen
        here, so queue jobs and direct calls together may exceed the limit.
        """
        active = [job for job in self.key_jobs.get(key, ()) if job.end() > now]
        self.key_jobs[key] = active
        if len(active) < limit:
            return now
        ends = sorted(job.end() for job in active)
        return ends[len(active) - limit]

    def record(self, entry: dict[str, Any]) -> None:
        log = self.log
        log.append(entry)
        limit = self.config.history_limit
        if len(log) > limit:
            # Drop the oldest half at once so trimming stays amortised O(1).
            del log[: max(1, len(log) - limit // 2)]

    def record_event(self, kind: str, **fields: Any) -> None:
        self.record({"t": time.monotonic(), "kind": kind, **fields})

    def add_job(self, job: Job) -> None:
        jobs = self.jobs
        jobs[job.request_id] = job
        while len(jobs) > max(1, self.config.history_limit):
            del jobs[next(iter(jobs))]

    def count_attempt(self, tag: str) -> int:
        """Increment and return the attempt number (1-based) for ``tag``."""
        n = self.attempts.get(tag, 0) + 1
        self.attempts[tag] = n
        return n

    def clear(self) -> None:
        self.log.clear()
        self.attempts.clear()
        self.key_peak.clear()
        self.key_refused.clear()
        self.key_jobs.clear()

    def stats(self) -> dict[str, int]:
        return {"open_streams": self.open_streams, "in_flight": self.in_flight}
