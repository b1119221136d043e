"""The simulator's raw ASGI application: routing, gauges and the ``/_sim`` control API."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import orjson

from . import direct, media, openrouter, platform, queue, video
from .apps import base_length
from .asgi import JSON_TYPE, Receive, Scope, Send, install_drop_filter, read_body, send_bytes
from .common import Call, Prepared, decode_body, prepare
from .config import ConfigError, SimulatorConfig, config_to_json, patch_config
from .state import SimulatorState

_STREAM_SUFFIX = "/stream"
# Every /_sim/ answer says what it is: a test double's control API, never fal itself.
_CONTROL_HEADER = (b"x-fal-simulator", b"fal simulator control endpoint")
_KEY_FIELDS = ("keys", "forbidden_keys", "locked_keys", "rate_limited_keys", "billing_keys")


def key_label(key: str | None) -> str | None:
    """A key as control endpoints show it: a fingerprint, never the key."""
    if key is None:
        return None
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


class SimulatorApp:
    """ASGI 3 callable. Tests reach the live state through ``app.simulator_state``."""

    def __init__(self, state: SimulatorState) -> None:
        self.simulator_state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if media.handles(path):
            await media.serve(self.simulator_state, scope, receive, send)
            return
        if path.startswith("/_sim/") or path == "/healthz":
            await _control(self.simulator_state, scope, receive, send)
            return
        if path.startswith(platform.PREFIX + "/"):  # fal's platform API (api.fal.ai)
            await platform.serve(self.simulator_state, Call(scope, receive, send, _new_id()))
            return
        state = self.simulator_state
        state.in_flight += 1
        try:
            await self._fal(state, scope, receive, send, path)
        finally:
            state.in_flight -= 1

    async def _fal(
        self, state: SimulatorState, scope: Scope, receive: Receive, send: Send, path: str
    ) -> None:
        config = state.config
        queue_prefix, run_prefix = config.queue_prefix, config.run_prefix
        in_queue = path.startswith(queue_prefix + "/")
        in_run = path.startswith(run_prefix + "/")
        # The longer prefix wins, so one prefix may nest inside the other.
        if in_queue and (not in_run or len(queue_prefix) >= len(run_prefix)):
            rest = path[len(queue_prefix) + 1 :].strip("/")
            await _queue(state, scope, receive, send, rest)
            return
        if in_run:
            rest = path[len(run_prefix) + 1 :].strip("/")
            if rest.startswith(openrouter.PREFIX):
                call = Call(scope, receive, send, _new_id())
                await openrouter.handle(call, state, rest[len(openrouter.PREFIX) :])
                return
            await _direct(state, Call(scope, receive, send, _new_id()), rest)
            return
        await Call(scope, receive, send, _new_id()).detail(404, "Not Found")


def _new_id() -> str:
    return str(uuid.uuid4())


async def _direct(state: SimulatorState, call: Call, rest: str) -> None:
    is_stream = rest.endswith(_STREAM_SUFFIX)
    app_id = rest[: -len(_STREAM_SUFFIX)] if is_stream else rest
    if call.method != "POST":
        await read_body(call.receive)
        await call.detail(405, "Method Not Allowed")
        return
    p = await prepare(call, state, "stream" if is_stream else "run", app_id)
    if not isinstance(p, Prepared):
        return
    if not _acquire(state, p):
        await call.detail(429, "Concurrent request limit reached for this key")
        return
    try:
        await (direct.stream if is_stream else direct.run)(call, state, p)
    finally:
        _release(state, p)


def _acquire(state: SimulatorState, p: Prepared) -> bool:
    """Per-key slot for direct calls, like fal's gateway concurrency check."""
    limit = state.config.key_concurrency
    current = state.key_in_flight.get(p.key, 0)
    if limit is not None:
        running = current + state.running_jobs(p.key, time.monotonic())
        state.key_peak[p.key] = max(state.key_peak.get(p.key, 0), running + 1)
        if running >= limit:
            state.key_refused[p.key] = state.key_refused.get(p.key, 0) + 1
            return False
    state.key_in_flight[p.key] = current + 1
    return True


def _release(state: SimulatorState, p: Prepared) -> None:
    remaining = state.key_in_flight.get(p.key, 1) - 1
    if remaining > 0:
        state.key_in_flight[p.key] = remaining
    else:
        state.key_in_flight.pop(p.key, None)


async def _queue(
    state: SimulatorState, scope: Scope, receive: Receive, send: Send, rest: str
) -> None:
    segments = rest.split("/")
    n = base_length(segments)
    if len(segments) > n + 1 and segments[n] == "requests":
        call = Call(scope, receive, send, segments[n + 1])
        base = "/".join(segments[:n])
        await queue.request_op(call, state, base, segments[n + 1], tuple(segments[n + 2 :]))
        return
    call = Call(scope, receive, send, _new_id())
    if call.method != "POST":
        await read_body(receive)
        await call.detail(405, "Method Not Allowed")
        return
    if media.is_media_app(rest):
        await media.submit(call, state, rest)
        return
    if video.is_video_app(rest):
        await video.submit(call, state, rest)
        return
    p = await prepare(call, state, "submit", rest, defer_invalid=True)
    if p is not None:
        await queue.submit(call, state, p)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _reply(send: Send, status: int, payload: Any) -> None:
    try:
        body = orjson.dumps(payload)
    except TypeError:  # e.g. an integer beyond 64 bits inside a logged body
        body = json.dumps(payload).encode()
    await send_bytes(send, status, body, [_CONTROL_HEADER], JSON_TYPE)


def _public_log(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request log without secrets (keys as fingerprints; headers never hold them)."""
    return [
        {**entry, "key": key_label(entry["key"])} if entry.get("key") else entry for entry in log
    ]


def _public_config(state: SimulatorState) -> dict[str, Any]:
    config = config_to_json(state.config)
    for name in _KEY_FIELDS:
        if config[name] is not None:
            config[name] = [key_label(k) for k in config[name]]
    return config


async def _control(state: SimulatorState, scope: Scope, receive: Receive, send: Send) -> None:
    """Unauthenticated test/debug endpoints."""
    raw = await read_body(receive)
    route = (scope["method"], scope["path"])
    if route == ("GET", "/healthz"):
        await _reply(send, 200, {"status": "ok"})
    elif route == ("GET", "/_sim/log"):
        await _reply(send, 200, _public_log(state.log))
    elif route == ("DELETE", "/_sim/log"):
        state.clear()
        await _reply(send, 200, {"cleared": True})
    elif route == ("GET", "/_sim/stats"):
        await _reply(send, 200, state.stats())
    elif route == ("GET", "/_sim/config"):
        await _reply(send, 200, _public_config(state))
    elif route == ("PATCH", "/_sim/config"):
        await _patch(state, raw, send)
    else:
        await _reply(send, 404, {"detail": "Not Found"})


async def _patch(state: SimulatorState, raw: bytes, send: Send) -> None:
    changes = decode_body(raw)
    if not isinstance(changes, dict):
        await _reply(send, 400, {"detail": "expected a JSON object"})
        return
    try:
        patch_config(state.config, changes)
    except ConfigError as exc:
        await _reply(send, 400, {"detail": str(exc)})
        return
    await _reply(send, 200, _public_config(state))


def create_simulator_app(config: SimulatorConfig | None = None) -> SimulatorApp:
    """Build a fal-compatible ASGI app; its state is ``app.simulator_state``."""
    install_drop_filter()
    return SimulatorApp(SimulatorState(config=config or SimulatorConfig()))
