"""`fal-openai-proxy check-config`: every problem of a configuration, without starting.

Each check is a function of the settings returning its problems (plain sentences that never
quote a secret). A new check is one function decorated with `@check`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dotenv.parser import parse_stream
from pydantic import ValidationError

from ..base.settings import Settings
from ..fal.media_apps import MEDIA_APPS
from ..services.catalog import load_models_file
from ..services.pricing import load_price_table
from ..store.db import DatabaseUrlError, describe, head_revision, schema_revision, sqlite_path
from ..translate.cost import PriceTableError

Check = Callable[[Settings], Iterable[str]]
CHECKS: list[Check] = []
REDIS_TIMEOUT = 2.0
DATABASE_TIMEOUT = 10.0
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def check(function: Check) -> Check:
    CHECKS.append(function)
    return function


def run_checks(
    overrides: dict[str, Any] | None = None, env_file: Path | None = Path(".env")
) -> list[str]:
    """Every problem found: malformed values first, then each check on the rest.
    `overrides` are the command-line flags."""
    overrides = overrides or {}
    logging.getLogger("dotenv.main").setLevel(logging.ERROR)  # its warnings are reported below
    problems = list(_env_file_problems(env_file))
    try:
        settings = Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        problems += validation_problems(exc)
        # Go on with the defaults in place of the malformed values, to find the other problems.
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        defaults = {name: Settings.model_fields[name].get_default() for name in bad}
        try:
            settings = Settings(_env_file=env_file, **{**overrides, **defaults})
        except ValidationError:
            return problems
    for function in CHECKS:
        problems += function(settings)
    return problems


def validation_problems(exc: ValidationError) -> list[str]:
    """One line per malformed value; pydantic's messages, never the value itself."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in error["loc"]).upper() or "settings"
        message = error["msg"].removeprefix("Value error, ").removeprefix(f"{name}: ")
        lines.append(f"{name}: {message.rstrip('.')}.")
    return lines


def _env_file_problems(env_file: Path | None) -> Iterable[str]:
    if env_file is None or not env_file.is_file():
        return
    try:
        with env_file.open(encoding="utf-8") as stream:
            for binding in parse_stream(stream):
                if binding.error:
                    line = binding.original.line
                    yield f"{env_file}: line {line} is not `NAME=value`; it is ignored."
    except (OSError, UnicodeDecodeError) as exc:
        yield f"{env_file}: cannot be read ({type(exc).__name__})."


@check
def startup_refusals(settings: Settings) -> Iterable[str]:
    """What the server itself refuses at start."""
    return settings.startup_problems()


@check
def log_level(settings: Settings) -> Iterable[str]:
    if settings.log_level.lower() not in LOG_LEVELS:
        yield f"LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}."


@check
def fal_urls(settings: Settings) -> Iterable[str]:
    for name in ("fal_run_url", "fal_queue_url", "fal_api_url"):
        parts = urlsplit(getattr(settings, name))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            yield f"{name.upper()}: must be an http:// or https:// URL."


@check
def audio_apps(settings: Settings) -> Iterable[str]:
    """A default audio app outside the table would answer every OpenAI id with a 400."""
    for name, family in (("fal_transcribe_app", "stt"), ("fal_speech_app", "tts")):
        served = [a.app_id for a in MEDIA_APPS.values() if a.family == family]
        if getattr(settings, name) not in served:
            yield f"{name.upper()}: must be one of {', '.join(served)} (docs/media.md)."


@check
def models_file(settings: Settings) -> Iterable[str]:
    path = settings.models_file
    if path is None:
        return
    try:
        load_models_file(path)
    except OSError as exc:
        yield f"MODELS_FILE: {path} cannot be read ({exc.strerror or type(exc).__name__})."
    except Exception as exc:  # JSON, YAML or shape errors: the message says which
        yield f"MODELS_FILE: {path} is not a valid model list: {exc}"


@check
def prices_file(settings: Settings) -> Iterable[str]:
    if settings.prices_file is None:
        return
    try:
        load_price_table(settings.prices_file)
    except PriceTableError as exc:  # unreadable, bad syntax or a bad field: the message says
        yield str(exc)


@check
def redis_reachable(settings: Settings) -> Iterable[str]:
    if not settings.redis_url:
        return
    parts = urlsplit(settings.redis_url)
    if parts.scheme not in ("redis", "rediss", "async+redis", "async+rediss"):
        yield "REDIS_URL: must start with redis:// or rediss://."
        return
    host, port = parts.hostname or "localhost", parts.port or 6379
    where = f"{host}:{port}"  # never the URL: it may hold a password
    try:
        reply = _redis_ping(host, port, parts.scheme.endswith("rediss"), parts)
    except OSError as exc:
        yield f"REDIS_URL: cannot reach Redis at {where} ({exc.strerror or type(exc).__name__})."
        return
    if not reply.startswith(b"+PONG"):
        yield f"REDIS_URL: Redis at {where} refused PING ({reply[:60].decode(errors='replace')})"


@check
def database(settings: Settings) -> Iterable[str]:
    """DATABASE_URL: reachable, and migrated to the schema this version needs."""
    if not settings.accounts_enabled:
        return
    url = settings.database_url
    where = describe(url)
    try:
        path = sqlite_path(url)
    except DatabaseUrlError as exc:
        yield f"DATABASE_URL: {exc}"
        return
    if path is not None and not path.exists():
        folder = path.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            yield f"DATABASE_URL: {folder} is not a folder this process can write in."
        return  # the server creates and migrates the file at start
    try:
        revision = asyncio.run(asyncio.wait_for(schema_revision(url), DATABASE_TIMEOUT))
    except Exception as exc:  # never the message: it may quote the URL
        yield f"DATABASE_URL: cannot reach {where} ({type(exc).__name__})."
        return
    head = head_revision()
    if revision != head:
        yield (
            f"DATABASE_URL: {where} is at schema revision {revision or '(none)'}, not {head}: "
            "run `fal-openai-proxy db upgrade` (the server also migrates it at start)."
        )


def _redis_ping(host: str, port: int, tls: bool, parts: Any) -> bytes:
    """AUTH (if the URL has a password) and PING, in RESP, within REDIS_TIMEOUT."""
    commands = []
    if parts.password:
        auth = [unquote(parts.username)] if parts.username else []
        commands.append(["AUTH", *auth, unquote(parts.password)])
    commands.append(["PING"])
    with socket.create_connection((host, port), timeout=REDIS_TIMEOUT) as raw:
        sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host) if tls else raw
        sock.settimeout(REDIS_TIMEOUT)
        reply = b""
        for command in commands:
            payload = f"*{len(command)}\r\n".encode()
            for arg in command:
                data = arg.encode()
                payload += b"$%d\r\n%s\r\n" % (len(data), data)
            sock.sendall(payload)
            reply = sock.recv(256)
            if not reply.startswith(b"+"):
                return reply.strip() or b"no answer"
        return reply
