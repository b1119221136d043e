"""Logs on stderr: JSON objects one per line, or readable lines for a terminal (LOG_FORMAT)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import sys
import time
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import orjson

_STANDARD = logging.makeLogRecord({}).__dict__
_RESERVED = set(_STANDARD) | {"message", "asctime", "color_message"}
# A record's own attributes come first, in this number: `extra` fields follow them.
_OWN = len(_STANDARD)
# The fields of a request line, in the order a text line shows them after the status.
_TEXT_KEYS = ("duration_ms", "model", "stream", "error_type", "request_id", "fal_request_id")


# `scheme://user:password@` anywhere in a line: a URL setting or an error may carry one.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")


def redact_url(url: str) -> str:
    """`url` without its user:password (`***` in their place): for banners and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(r"\1***@", url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def redact(text: str) -> str:
    """`text` with the user:password of every URL in it replaced by `***`."""
    return _USERINFO.sub(r"\1***@", text) if "://" in text else text


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: redact(value) if type(value) is str else value
        for key, value in itertools.islice(record.__dict__.items(), _OWN, None)
        if key not in _RESERVED and key[0] != "_"
    }


class AccessLog:
    """The access log's `info(fields)`: the same record `Logger.info("request",
    extra=fields)` makes, through the same handlers, built from a template instead of by
    `LogRecord.__init__` (a third of a line's cost, on every request)."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        record = logging.LogRecord(name, logging.INFO, "(unknown file)", 0, "request", None, None)
        self._template = record.__dict__
        self._started = getattr(logging, "_startTime", record.created)  # for relativeCreated

    def info(self, fields: dict[str, Any]) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        now = time.time()
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__.update(self._template)
        record.created, record.msecs = now, int((now - int(now)) * 1000) + 0.0
        record.relativeCreated = (now - self._started) * 1000
        record.__dict__.update(fields)
        self.logger.handle(record)


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1  # the whole second `_stamp` shows, formatted once per second
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        entry: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        entry.update(_extra(record))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """`12:00:01.234 INFO  POST /v1/chat/completions 200 12.3ms model=… id=…`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        head = f"{stamp}.{int(record.msecs):03d} {record.levelname:<5}"
        extra = _extra(record)
        if "status" in extra and "path" in extra:  # the access line of one request
            text = f"{extra.pop('method', '')} {extra.pop('path')} {extra.pop('status')}"
            if (duration := extra.pop("duration_ms", None)) is not None:
                text += f" {duration}ms"
        else:
            name = "uvicorn" if record.name == "uvicorn.error" else record.name  # not an error
            text = f"{name}: {redact(record.getMessage())}"
        pairs = [f"{key}={extra.pop(key)}" for key in _TEXT_KEYS if extra.get(key) is not None]
        pairs += [f"{key}={value}" for key, value in extra.items() if value is not None]
        line = " ".join([head, text, *pairs])
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


# Libraries whose INFO lines are chatter (coredis: `limits`' Redis client; redis-py).
QUIET_LIBRARIES = ("coredis", "redis")


def text_wanted(log_format: str, stream: Any = None) -> bool:
    if log_format == "auto":
        stream = stream or sys.stderr
        return bool(getattr(stream, "isatty", lambda: False)())
    return log_format == "text"


class LoopBatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose lines, when logged on a running event loop, are written together
    at the end of the loop's iteration: one write for the access lines of every request that
    ended in it, instead of one each. Lines from other threads are written at once; `flush()`
    (logging's shutdown at exit among others) writes what is waiting."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            loop = asyncio._get_running_loop()  # this thread's loop, if it runs one
            if loop is None:
                self._write(line)
                return
            if not self._waiting:
                loop.call_soon(self.flush)
            self._waiting.append(line)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # a handler always has its lock
            if self._waiting:
                lines, self._waiting = "".join(self._waiting), []
                self._write(lines)
            elif self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def configure_logging(level: str, log_format: str = "json", *, worker: bool = False) -> None:
    """Raises ValueError for an unknown level. `worker`: lines carry the worker's pid."""
    # No line shows where it was logged from, nor the thread, process or task: not having
    # logging look them up saves a third of a line's cost (the logging docs' "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if hasattr(logging, "logAsyncioTasks"):  # Python >= 3.12
        logging.logAsyncioTasks = False
    handler = LoopBatchingHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if text_wanted(log_format) else JsonFormatter())
    if worker:
        handler.addFilter(_PidFilter())
    root = logging.getLogger()
    root.setLevel(level.upper())
    root.handlers[:] = [handler]
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # we log each request ourselves
    # The Redis clients' own retry lines ("Retry attempt 1 due to error", one per call and
    # retry): in an outage they buried the one line that matters, shared.py's "Redis
    # unreachable" (and "reachable again" when it returns).
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


class _PidFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.pid = os.getpid()
        return True
