"""Logs on stderr: JSON objects one per line, or readable lines for a terminal (LOG_FORMAT)."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
# The fields of a request line, in the order a text line shows them after the status.
_TEXT_KEYS = ("duration_ms", "model", "stream", "error_type", "request_id", "fal_request_id")


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
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
            "msg": record.getMessage(),
        }
        entry.update(_extra(record))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = self.formatException(record.exc_info)
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
            text = f"{name}: {record.getMessage()}"
        pairs = [f"{key}={extra.pop(key)}" for key in _TEXT_KEYS if extra.get(key) is not None]
        pairs += [f"{key}={value}" for key, value in extra.items() if value is not None]
        line = " ".join([head, text, *pairs])
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return line


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


class _PidFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.pid = os.getpid()
        return True
