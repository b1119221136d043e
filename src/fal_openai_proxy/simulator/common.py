"""Per-request context and the checks shared by run, stream and queue submit."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import orjson

from .apps import APPS, AppSpec
from .asgi import Headers, Receive, Scope, Send, read_body, send_bytes, send_json
from .directives import NO_DIRECTIVES, Directives, build, scan
from .state import SimulatorState
from .text import subject
from .validation import ChatInput, ErrorItem, body_not_object, validate

_INVALID = object()  # marks a body that is not valid JSON
_NGINX_PAGE = (
    b"<html>\r\n<head><title>{code}</title></head>\r\n<body>\r\n"
    b"<center><h1>{code}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_HTML_TYPE = (b"content-type", b"text/html")


class Call:
    """One HTTP exchange: the ASGI triple plus what every handler needs."""

    __slots__ = ("headers", "key", "method", "path", "receive", "request_id", "scope", "send")

    def __init__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.request_id = request_id
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[str, str] = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        self.key: str | None = None

    @property
    def id_header(self) -> Headers:
        return [(b"x-fal-request-id", self.request_id.encode())]

    async def json(self, status: int, payload: Any, extra: Headers | None = None) -> None:
        headers = self.id_header if extra is None else [*self.id_header, *extra]
        await send_json(self.send, status, payload, headers)

    async def detail(self, status: int, message: str) -> None:
        await self.json(status, {"detail": message})

    def log(self, state: SimulatorState, kind: str, app: str | None, body: Any) -> None:
        headers = dict(self.headers)
        headers.pop("authorization", None)
        state.record(
            {
                "t": time.monotonic(),
                "kind": kind,
                "method": self.method,
                "path": self.path,
                "app": app,
                "key": self.key,
                "body": body,
                "request_id": self.request_id,
                "headers": headers,
            }
        )

    def log_disconnect(self, state: SimulatorState) -> None:
        state.record_event("disconnect", path=self.path, request_id=self.request_id)


def parse_key(call: Call) -> None:
    """Set ``call.key`` from ``Authorization: Key <key>`` (None if absent or malformed)."""
    value = call.headers.get("authorization")
    if value is not None and value.startswith("Key "):
        key = value[4:].strip()
        call.key = key or None


# fal's answer to a key of a locked account (docs/fal-protocol.md §9.2).
LOCKED_DETAIL = "User is locked. Reason: Exhausted balance. Top up your balance to continue."


async def check_auth(call: Call, state: SimulatorState) -> bool:
    """Answer 401/403/429 and return False unless the key may call fal. Never echoes keys."""
    key = call.key
    config = state.config
    if "authorization" not in call.headers:
        await call.detail(401, "Missing authorization header")
    elif key is None:
        await call.detail(401, "Invalid authorization header, expected 'Key <key>'")
    elif config.keys is not None and key not in config.keys:
        await call.detail(401, "No user found for Key ID and Secret")
    elif key in config.forbidden_keys:
        await call.detail(403, "Forbidden")
    elif key in config.locked_keys:
        await call.detail(403, LOCKED_DETAIL)
    elif key in config.rate_limited_keys:
        await call.detail(429, "Rate limit exceeded, please retry later")
    else:
        return True
    return False


def decode_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # orjson rejects integers beyond 64 bits; FastAPI does not
        return json.loads(raw)
    except ValueError:
        return _INVALID


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request that passed auth, app lookup, scripted failures and validation."""

    app: AppSpec
    inp: ChatInput
    clean_prompt: str
    directives: Directives
    key: str


def start_timeout(call: Call) -> float | None:
    """`X-Fal-Request-Timeout`: the seconds a request may wait before it starts; None if
    absent or not a number over 1 (docs/fal-protocol.md §2)."""
    raw = call.headers.get("x-fal-request-timeout")
    try:
        seconds = float(raw) if raw is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 1 else None


def read_directives(body: dict[str, Any]) -> tuple[str, Directives]:
    """Return the prompt without markers, and the merged directives (system_prompt first)."""
    prompt = body.get("prompt")
    system = body.get("system_prompt")
    objects: list[dict[str, Any]] = []
    if isinstance(system, str):
        objects.extend(scan(system)[1])
    clean = ""
    if isinstance(prompt, str):
        clean, found = scan(prompt)
        objects.extend(found)
    return clean, build(objects) if objects else NO_DIRECTIVES


@dataclass(frozen=True, slots=True)
class Invalid:
    """A queue submit whose input fails validation: fal's queue accepts it, and the runner's
    422 becomes the request's result (docs/fal-protocol.md §7)."""

    app: AppSpec
    errors: list[ErrorItem]
    directives: Directives


async def prepare(
    call: Call, state: SimulatorState, kind: str, app_id: str, *, defer_invalid: bool = False
) -> Prepared | Invalid | None:
    """Run the shared front half of run/stream/submit; None means a response was sent.

    With `defer_invalid` (a queue submit), invalid input is returned as `Invalid`."""
    body = decode_body(await read_body(call.receive))
    parse_key(call)
    call.log(state, kind, app_id, None if body is _INVALID else body)
    if not await check_auth(call, state):
        return None
    app = APPS.get(app_id)
    if app is None:
        await call.detail(404, f"Application '{app_id}' not found")
        return None
    if not isinstance(body, dict):
        await call.json(422, {"detail": _bad_body(body)})
        return None
    clean_prompt, directives = read_directives(body)
    if _scripted_failure(state, directives, clean_prompt):
        await send_scripted_error(call, directives)
        return None
    checked = validate(body, app, directives.max_prompt_chars)
    if isinstance(checked, list):
        if defer_invalid:
            return Invalid(app, checked, directives)
        await call.json(422, {"detail": checked})
        return None
    assert call.key is not None  # check_auth guarantees it
    return Prepared(app, checked, clean_prompt, directives, call.key)


def _bad_body(body: Any) -> list[ErrorItem]:
    if body is _INVALID:
        return [
            {"loc": ["body", 0], "msg": "JSON decode error", "type": "json_invalid", "input": {}}
        ]
    return body_not_object(body)


def _scripted_failure(state: SimulatorState, d: Directives, clean_prompt: str) -> bool:
    """Whether this attempt must fail; ``fail_times`` counts attempts per tag."""
    if d.status is None and d.fail_times is None:
        return False
    if d.fail_times is None:
        return True
    tag = d.tag if d.tag is not None else subject(clean_prompt)
    return state.count_attempt(tag) <= d.fail_times


async def send_scripted_error(call: Call, d: Directives) -> None:
    # fail_times alone means "transient failure": 503 like an unavailable runner.
    status = d.status if d.status is not None else 503
    extra: Headers = [(k.lower().encode(), v.encode()) for k, v in (d.headers or {}).items()]
    if d.ingress:
        # Like fal's nginx ingress: HTML body, no x-fal-request-id; clients retry these.
        if isinstance(d.body, str):
            page = d.body.encode()
        else:
            page = _NGINX_PAGE.replace(b"{code}", str(status).encode())
        await send_bytes(call.send, status, page, extra, _HTML_TYPE)
        return
    body = d.body if d.body is not None else {"detail": "Simulated error"}
    await call.json(status, body, extra)
