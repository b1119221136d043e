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
        "request_id",
        "started_at",
    )

    def __init__(
        self,
        request_id: str,
        app: AppSpec,
        inp: ChatInput,
        answer: Answer,
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
        self.error_type: str | None = None if self.error is None else "runner_server_error"
        self._changed: asyncio.Future[None] | None = None

    def status(self, now: float) -> str:
        if self.cancelled_at is not None or now >= self.done_at:
            return COMPLETED
        return IN_QUEUE if now < self.started_at else IN_PROGRESS

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
            "status": COMPLETED,
            "logs": None,
            "metrics": {"inference_time": round(elapsed, 6)},
        }
        if self.error is not None:
            body["error"] = self.error
            body["error_type"] = self.error_type
        return body

    def cancel(self, now: float) -> None:
        self.cancelled_at = now
        self.error = "Request was cancelled by the client"
        self.error_type = "client_cancelled"
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

    def stats(self) -> dict[str, int]:
        return {"open_streams": self.open_streams, "in_flight": self.in_flight}
