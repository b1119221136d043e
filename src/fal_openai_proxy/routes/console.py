"""The console (docs/console.md): its page and files, served from the package, and its sign-in.

The page is static HTML, CSS and JavaScript modules (`fal_openai_proxy/console/`, shipped in
the wheel, no build step); everything it shows comes from the admin API and the proxy's own
OpenAI endpoints, called from the page. Every answer here carries a strict Content-Security-
Policy (scripts and styles from this origin only: no inline script, no eval) and refuses
framing.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..openai.errors import ProxyError, invalid_request
from ..serve.console_auth import COOKIE, cookie_header, same_origin
from ..serve.state import proxy_state
from .registry import JSON, Auth, Body, Endpoint, Operation

MAX_SIGN_IN_BODY = 4096
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _load_assets() -> dict[str, Asset]:
    """Every file of the console, read once at import (a few dozen kilobytes)."""
    root = resources.files("fal_openai_proxy") / "console"
    found: dict[str, Asset] = {}

    def walk(folder: resources.abc.Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.is_dir():
                walk(entry, name + "/")
                continue
            suffix = "." + entry.name.rpartition(".")[2]
            media_type = _TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
            if media_type is None:
                continue
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            if media_type.startswith("text/"):
                media_type += "; charset=utf-8"
            found[name] = Asset(body, media_type, etag)

    walk(root, "")
    return found


ASSETS = _load_assets()


def _served(request: Request, asset: Asset) -> Response:
    """The file, or 304 when the browser has it; revalidated on every load, so an upgrade
    never leaves an old script in a browser cache."""
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def console_json(body: object, cookie: str | None = None) -> Response:
    all_headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    if cookie is not None:
        all_headers["Set-Cookie"] = cookie
    return Response(orjson.dumps(body), media_type=JSON, headers=all_headers)


async def page(request: Request) -> Response:
    return _served(request, ASSETS["index.html"])


async def asset(request: Request) -> Response:
    found = ASSETS.get(request.path_params["name"])
    if found is None or request.path_params["name"] == "index.html":
        raise ProxyError(404, "No such file in the console.", code="unknown_url")
    return _served(request, found)


# -- the session ---------------------------------------------------------------------------


class SignIn(BaseModel):
    admin_key: str = Field(min_length=1, max_length=1024, description="The server's ADMIN_KEY.")


class SessionState(BaseModel):
    admin_key_set: bool = Field(description="false: ADMIN_KEY is unset, the console is off.")
    signed_in: bool
    csrf_token: str | None = Field(
        description="Send it as `X-CSRF-Token` with every call made with the session."
    )
    expires_at: int | None = Field(description="Unix time the session ends.")
    session_ttl: int = Field(description="Seconds a sign-in lasts (CONSOLE_SESSION_TTL).")
    mode: Literal["pool", "passthrough"] = Field(
        description="`passthrough`: no server fal key, so the playground needs a key of yours."
    )


def _state(request: Request, signed_in: bool = True) -> dict[str, object]:
    state = proxy_state(request)
    console = state.console
    session = console.session(request.scope) if signed_in else None
    return {
        "admin_key_set": console.enabled,
        "signed_in": session is not None,
        "csrf_token": console.csrf_token(session) if session is not None else None,
        "expires_at": session.expires_at if session is not None else None,
        "session_ttl": console.session_ttl,
        "mode": "passthrough" if state.settings.pass_through else "pool",
    }


async def session_state(request: Request) -> Response:
    return console_json(_state(request))


async def sign_in(request: Request) -> Response:
    """ADMIN_KEY, posted once as JSON by the console's form: a session cookie in exchange."""
    if not same_origin(request.scope):
        raise ProxyError(403, "Sign in from the console's own page.", code="origin_not_allowed")
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != JSON:  # a form from another site cannot send JSON without asking
        raise ProxyError(
            415, f"Unsupported Content-Type {content_type or '(none)'!r}: send {JSON}.",
            code="unsupported_media_type",
        )  # fmt: skip
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_SIGN_IN_BODY:
                raise invalid_request("The sign-in body is too large.", code="request_too_large")
    except ClientDisconnect:
        raise invalid_request("The sign-in body was cut short.") from None
    try:
        key = SignIn.model_validate_json(body).admin_key
    except ValidationError:
        raise invalid_request(
            'Send {"admin_key": "<ADMIN_KEY>"}.', param="admin_key", code="invalid_value"
        ) from None
    console = proxy_state(request).console
    address = request.client.host if request.client else "unknown"
    value, session = await console.sign_in(key, address)
    secure = request.url.scheme == "https"
    cookie = cookie_header(value, max_age=console.session_ttl, secure=secure)
    body_out = {
        **_state(request, signed_in=False),
        "signed_in": True,
        "csrf_token": console.csrf_token(session),
        "expires_at": session.expires_at,
    }
    return console_json(body_out, cookie)


async def sign_out(request: Request) -> Response:
    """Ends the session (everywhere, within a Redis tick) and clears the cookie."""
    console = proxy_state(request).console
    session = console.api_session(request.scope)
    if session is not None:
        await console.sign_out(session)
    secure = request.url.scheme == "https"
    cookie = cookie_header("", max_age=0, secure=secure)
    return console_json(_state(request, signed_in=False), cookie)


SIGN_IN_ERRORS = {
    400: 'A body that is not `{"admin_key": "…"}`.',
    401: "A wrong admin key (`invalid_api_key`).",
    403: "ADMIN_KEY is unset (`admin_disabled`), or the call comes from another origin.",
    415: "Not JSON.",
    429: "Too many wrong keys from this address within a minute; see Retry-After.",
}

ROUTES = [
    Endpoint("GET", "/console", page,
             Operation("The console: a page to run the proxy from (docs/console.md).",
                       media_types=("text/html",)),
             auth=Auth.PUBLIC),
    Endpoint("GET", "/console/session", session_state,
             Operation("Whether ADMIN_KEY is set, whether this browser is signed in, and its "
                       "session's CSRF token.", response=SessionState),
             auth=Auth.PUBLIC),
    Endpoint("POST", "/console/session", sign_in,
             Operation(f"Sign in with ADMIN_KEY: sets the `{COOKIE}` session cookie (HttpOnly, "
                       "SameSite=Strict, Secure over https).",
                       request=SignIn, example={"admin_key": "not-the-admin-key-0000"},
                       response=SessionState, status=401, responses=SIGN_IN_ERRORS),
             body=Body.JSON, auth=Auth.PUBLIC),
    Endpoint("DELETE", "/console/session", sign_out,
             Operation("Sign out: ends the session and clears its cookie.",
                       response=SessionState),
             auth=Auth.PUBLIC),
    Endpoint("GET", "/console/{name:path}", asset,
             Operation("The console's files (scripts, styles, icons).",
                       media_types=("text/css",), path_example={"name": "console.css"},
                       responses={404: "No such file."}),
             auth=Auth.PUBLIC),
]  # fmt: skip
