"""Logs on stderr: JSON objects one per line, or readable lines for a terminal (LOG_FORMAT)."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
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
        key: redact(value) if isinstance(value, str) else value
        for key, value in record.__dict__.items()
        if key not in _RESERVED and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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


def configure_logging(level: str, log_format: str = "json", *, worker: bool = False) -> None:
    """Raises ValueError for an unknown level. `worker`: lines carry the worker's pid."""
    handler = logging.StreamHandler(sys.stderr)
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
