"""`fal-openai-proxy doctor`: a deployment checked end to end, before its users find out.

The configuration (as `check-config`); each server fal key, accepted or refused, and the
account's balance where the key's scope allows reading it; one minimal real call per family
asked for, through the whole proxy in this process (the same middleware, services and cost
sources as the server), with its latency and cost; Redis and the database. A table, or JSON;
the exit status is 1 if any check failed. Keys are named by position, never shown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

from ..base.settings import Settings
from ..fal.pricing import PlatformCallError, fetch_balance, fetch_unit_prices
from ..store.db import head_revision
from .app import ConfigError, ProxyApp, create_app
from .context import RequestContext, request_context
from .state import ProxyState

Status = Literal["ok", "fail", "skip"]
FAMILIES = ("chat", "images", "audio", "video")
VIDEO_POLL_INTERVAL = 2.0  # seconds between reads of a video job's status


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    latency_ms: float | None = None
    cost: float | None = None  # USD; None: unknown (or not applicable)
    cost_source: str | None = None


@dataclass
class Answer:
    status: int
    body: bytes
    context: RequestContext
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)


async def diagnose(
    settings: Settings, families: Sequence[str], problems: Sequence[str] = ()
) -> list[Check]:
    """Every check, in the order the table shows them; `problems` are check-config's."""
    checks = [
        Check("configuration", "fail", "; ".join(problems))
        if problems
        else Check("configuration", "ok", "valid")
    ]
    try:
        app = create_app(settings)
    except ConfigError as exc:
        checks.append(Check("start-up", "fail", str(exc)))
        return checks
    state: ProxyState = app.state.proxy
    async with app.starlette.router.lifespan_context(app.starlette):
        checks += await _key_checks(settings, state)
        if state.upstream.unit_prices is not None:
            await state.upstream.unit_prices.refresh()  # so that the calls below are priced already
        for family in families:
            checks.append(await _call_check(family, app, settings, state))
        checks.append(await _redis_check(state))
        checks.append(await database_check(state))
    return checks


# -- keys --------------------------------------------------------------------------------------


async def _key_checks(settings: Settings, state: ProxyState) -> list[Check]:
    keys = settings.fal_keys
    if not keys:
        return [
            Check(
                "fal keys",
                "skip",
                "no FAL_KEY: pass-through mode, each client's own key is sent to fal",
            )
        ]
    return [await _key_check(index, key, settings, state) for index, key in enumerate(keys)]


async def _key_check(index: int, key: str, settings: Settings, state: ProxyState) -> Check:
    """Accepted or refused (fal's pricing API needs a valid key of any scope), then the
    balance (fal's billing API needs the `billing:usage:read` scope: docs/fal-protocol.md
    §14.3)."""
    name = f"fal key #{index + 1}"
    started = time.perf_counter()
    try:
        await fetch_unit_prices(
            state.upstream.http, settings.fal_api_url, key, [settings.fal_image_app]
        )
    except PlatformCallError as exc:
        seconds = time.perf_counter() - started
        if exc.status in (401, 403):
            return Check(name, "fail", f"refused by fal (HTTP {exc.status})", _ms(seconds))
        return Check(name, "fail", f"cannot be checked: {exc}", _ms(seconds))
    try:
        balance = await fetch_balance(state.upstream.http, settings.fal_api_url, key)
    except PlatformCallError as exc:
        seconds = time.perf_counter() - started
        if exc.status == 403:
            detail = (
                "accepted; the balance is not shown: the key's scope does not allow reading "
                "it (fal's billing API needs billing:usage:read)"
            )
            return Check(name, "ok", detail, _ms(seconds))
        return Check(name, "ok", f"accepted; the balance cannot be read: {exc}", _ms(seconds))
    seconds = time.perf_counter() - started
    detail = f"accepted; balance {balance.current_balance:.2f} {balance.currency}"
    return Check(name, "ok", detail, _ms(seconds))


# -- one call per family -----------------------------------------------------------------------


async def _call_check(family: str, app: ProxyApp, settings: Settings, state: ProxyState) -> Check:
    if settings.pass_through:
        return Check(family, "skip", "pass-through mode: no server key to call fal with")
    probe = _PROBES[family]
    try:
        async with asyncio.timeout(settings.request_timeout + 30):
            return await probe(app, settings, state)
    except TimeoutError:
        return Check(family, "fail", f"no answer within {settings.request_timeout + 30:g} s")


async def _chat(app: ProxyApp, settings: Settings, state: ProxyState) -> Check:
    model = state.services.catalog.list()[0]["id"]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with the word OK."}],
        "max_tokens": 5,
    }
    answer = await post_json(app, settings, "/v1/chat/completions", body)
    return _priced("chat", answer, f"{model}: {_said(answer)}")


async def _images(app: ProxyApp, settings: Settings, state: ProxyState) -> Check:
    body = {"model": settings.fal_image_app, "prompt": "a small red square", "n": 1}
    answer = await post_json(app, settings, "/v1/images/generations", body)
    return _priced("images", answer, f"{settings.fal_image_app}: 1 image")


async def _audio(app: ProxyApp, settings: Settings, state: ProxyState) -> Check:
    body = {"model": settings.fal_speech_app, "input": "OK", "voice": "alloy"}
    answer = await post_json(app, settings, "/v1/audio/speech", body)
    return _priced("audio", answer, f"{settings.fal_speech_app}: {len(answer.body)} bytes")


async def _video(app: ProxyApp, settings: Settings, state: ProxyState) -> Check:
    """OpenAI's Videos API: create, then read the job until it ends."""
    body = {"prompt": "a red ball rolling", "seconds": "4"}
    created = await post_json(app, settings, "/v1/videos", body)
    if created.status in (404, 405):
        return Check("video", "skip", "this build serves no video endpoint (/v1/videos)")
    if created.status >= 300:
        return _priced("video", created, "")
    job = orjson.loads(created.body)
    seconds = created.seconds
    while job.get("status") in ("queued", "in_progress"):
        await asyncio.sleep(VIDEO_POLL_INTERVAL)
        read = await request(app, settings, "GET", f"/v1/videos/{job.get('id')}")
        seconds += read.seconds + VIDEO_POLL_INTERVAL
        if read.status >= 300:
            return _priced("video", read, "")
        job = orjson.loads(read.body)
    if job.get("status") != "completed":
        return Check("video", "fail", f"the video job ended {job.get('status')!r}", _ms(seconds))
    usage = created.context.usage
    return Check("video", "ok", "1 video", _ms(seconds), usage.cost, usage.cost_source)


_PROBES: dict[str, Callable[[ProxyApp, Settings, ProxyState], Awaitable[Check]]] = {
    "chat": _chat,
    "images": _images,
    "audio": _audio,
    "video": _video,
}


def _priced(name: str, answer: Answer, detail: str) -> Check:
    usage = answer.context.usage
    if answer.status >= 300:
        return Check(name, "fail", f"HTTP {answer.status}: {_error(answer)}", _ms(answer.seconds))
    if usage.cost is None:
        detail += "; cost unknown (no source priced it)"
    return Check(name, "ok", detail, _ms(answer.seconds), usage.cost, usage.cost_source)


def _said(answer: Answer) -> str:
    if answer.status >= 300:
        return ""
    try:
        content = orjson.loads(answer.body)["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, LookupError, TypeError):
        return "an answer"
    return repr(str(content)[:40])


def _error(answer: Answer) -> str:
    try:
        return str(orjson.loads(answer.body)["error"]["message"])[:300]
    except (orjson.JSONDecodeError, LookupError, TypeError):
        return answer.body[:200].decode("utf-8", "replace")


# -- stores ------------------------------------------------------------------------------------


async def _redis_check(state: ProxyState) -> Check:
    store = state.upstream.redis
    if store is None:
        return Check("redis", "skip", "REDIS_URL is not set: each process keeps its own state")
    started = time.perf_counter()
    try:
        await store.run(lambda redis: redis.ping())
    except Exception as exc:  # SharedDown, whatever the cause
        cause = type(exc.__cause__ or exc).__name__
        return Check("redis", "fail", f"unreachable ({cause})", _ms(time.perf_counter() - started))
    return Check("redis", "ok", "PING answered", _ms(time.perf_counter() - started))


async def database_check(state: ProxyState) -> Check:
    """The accounts database (DATABASE_URL): reachable, and at this version's schema (the
    server migrated it at start, if it could). Never its URL: it may hold a password."""
    accounts = state.accounts
    if accounts is None:
        return Check("database", "skip", "DATABASE_URL is none: no accounts")
    where = accounts.db.where
    started = time.perf_counter()
    try:
        revision = await accounts.db.revision()
    except Exception as exc:  # whatever the driver raises for an unreachable database
        return Check(
            "database", "fail", f"{where}: unreachable ({type(exc).__name__})",
            _ms(time.perf_counter() - started),
        )  # fmt: skip
    seconds = _ms(time.perf_counter() - started)
    head = head_revision()
    if revision != head:
        return Check(
            "database", "fail", f"{where}: schema at {revision or '(none)'}, not {head}", seconds
        )
    return Check("database", "ok", f"{where}: reachable, schema {revision}", seconds)


# -- an in-process HTTP call -------------------------------------------------------------------


async def post_json(app: ProxyApp, settings: Settings, path: str, body: Any) -> Answer:
    return await request(app, settings, "POST", path, orjson.dumps(body))


async def request(
    app: ProxyApp, settings: Settings, method: str, path: str, body: bytes = b""
) -> Answer:
    """One request through the application (middleware included), as a client would send
    it: the first API_KEY, a Host the server accepts."""
    hosts = settings.allowed_host_list
    headers = [(b"host", (hosts[0] if hosts else "localhost").encode())]
    if settings.api_keys:
        headers.append((b"authorization", f"Bearer {settings.api_keys[0]}".encode()))
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }  # fmt: skip
    ended = asyncio.Event()
    sent = False
    status = 0
    parts: list[bytes] = []
    answer_headers: dict[str, str] = {}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await ended.wait()  # the client stays until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            answer_headers.update(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
            )
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                ended.set()

    started = time.perf_counter()
    try:
        await app(scope, receive, send)  # type: ignore[arg-type]
    finally:
        ended.set()
    seconds = time.perf_counter() - started
    return Answer(status, b"".join(parts), request_context(scope), seconds, answer_headers)


# -- output ------------------------------------------------------------------------------------


def failed(checks: Sequence[Check]) -> bool:
    return any(c.status == "fail" for c in checks)


def as_json(checks: Sequence[Check]) -> str:
    return orjson.dumps(
        {"ok": not failed(checks), "checks": [asdict(c) for c in checks]},
        option=orjson.OPT_INDENT_2,
    ).decode()


def as_table(checks: Sequence[Check]) -> str:
    rows = [("CHECK", "STATUS", "LATENCY", "COST (USD)", "DETAIL")]
    for c in checks:
        latency = "" if c.latency_ms is None else f"{c.latency_ms:.0f} ms"
        cost = "" if c.cost is None else f"{c.cost:.6f} ({c.cost_source})"
        rows.append((c.name, c.status.upper(), latency, cost, c.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    ]
    verdict = "doctor: some checks FAILED" if failed(checks) else "doctor: all checks passed"
    return "\n".join([*lines, "", verdict])


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
