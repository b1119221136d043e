"""Who may use the admin API: `Authorization: Bearer <ADMIN_KEY>`, or the console's session.

The console (docs/console.md) posts ADMIN_KEY once to `POST /console/session` and gets a
session cookie: HttpOnly, SameSite=Strict, Secure over https, expiring after
CONSOLE_SESSION_TTL. A session is a signed token, not a row anywhere: every worker and replica
that shares ADMIN_KEY checks it without a lookup, and changing ADMIN_KEY ends every session.
The cookie alone never authorizes an API call: each call made with it must also send the
session's CSRF token (`X-CSRF-Token`, which only a page of this origin can read from
`GET /console/session`) and, when the browser names one, this server's own origin.

Sign-out ends a session before it expires: its id is remembered until then, in this process
and, with REDIS_URL, by every replica (synchronised at each Redis tick).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import cookie_parser
from starlette.types import Scope

from ..openai.errors import AUTHENTICATION, PERMISSION, ProxyError, rate_limited
from ..store.redis import RedisStore

log = logging.getLogger(__name__)

COOKIE = "fop_console"
CSRF_HEADER = b"x-csrf-token"
SIGN_IN_ATTEMPTS = 5  # wrong keys per minute from one address, then 429 for the rest of it
_VERSION = "v1"
_REVOKED_KEY = "console:revoked"  # a sorted set in Redis: session id -> its expiry


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    expires_at: int  # unix time


def admin_disabled() -> ProxyError:
    return ProxyError(
        403,
        "The admin API and the console are off: set ADMIN_KEY to a long random secret (in the "
        "environment or .env; e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        "`), then restart.",
        type=PERMISSION,
        code="admin_disabled",
    )


def _unauthorized(message: str, code: str = "invalid_api_key") -> ProxyError:
    return ProxyError(401, message, type=AUTHENTICATION, code=code)


class ConsoleAuth:
    """ADMIN_KEY, console sessions and their CSRF tokens, for one process."""

    def __init__(
        self,
        admin_key: str | None,
        *,
        session_ttl: float,
        redis: RedisStore | None = None,
    ) -> None:
        self._admin = admin_key.encode() if admin_key else None
        # The signing key is derived, so that a token never carries anything of ADMIN_KEY.
        self._signing = (
            hmac.new(self._admin, b"fal-openai-proxy console session", hashlib.sha256).digest()
            if self._admin
            else b""
        )
        self.session_ttl = int(session_ttl)
        self._redis = redis
        self._revoked: dict[str, int] = {}  # session id -> expiry
        self._failures = MovingWindowRateLimiter(storage_from_string("async+memory://"))
        self._attempts = RateLimitItemPerMinute(SIGN_IN_ATTEMPTS)
        if redis is not None:
            redis.on_tick(self._sync_revoked)

    @property
    def enabled(self) -> bool:
        """Whether ADMIN_KEY is set (without it the admin API and the console are off)."""
        return self._admin is not None

    # -- ADMIN_KEY ------------------------------------------------------------------------

    def is_admin_key(self, token: str | None) -> bool:
        return self._admin is not None and hmac.compare_digest((token or "").encode(), self._admin)

    async def sign_in(self, key: str, address: str) -> tuple[str, Session]:
        """A new session's cookie value for the right key; 401 for a wrong one, 429 after
        SIGN_IN_ATTEMPTS wrong ones from `address` within a minute."""
        if not self.enabled:
            raise admin_disabled()
        limit, namespace = self._attempts, "console-sign-in"
        if not await self._failures.test(limit, namespace, address):
            stats = await self._failures.get_window_stats(limit, namespace, address)
            raise rate_limited(
                f"Too many wrong admin keys from this address: at most {SIGN_IN_ATTEMPTS} a "
                "minute. Wait, then try again.",
                stats.reset_time - time.time(),
            )
        if not self.is_admin_key(key):
            await self._failures.hit(limit, namespace, address)
            log.warning("console: a wrong admin key was sent")
            raise _unauthorized("Incorrect admin key: this is not the server's ADMIN_KEY.")
        now = int(time.time())
        session = Session(_b64(secrets.token_bytes(16)), now + self.session_ttl)
        payload = f"{_VERSION}.{now}.{session.expires_at}.{session.id}"
        return f"{payload}.{self._sign(payload)}", session

    # -- sessions -------------------------------------------------------------------------

    def session(self, scope: Scope) -> Session | None:
        """The live session named by the request's cookie, if any."""
        if not self.enabled:
            return None
        value = _cookie(scope, COOKIE)
        if not value:
            return None
        payload, _, mac = value.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
            return None
        if not hmac.compare_digest(mac.encode(), self._sign(payload).encode()):
            return None
        session = Session(parts[3], int(parts[2]))
        if session.expires_at <= time.time() or session.id in self._revoked:
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf.{session.id}")

    def api_session(self, scope: Scope) -> Session | None:
        """A session that may make this API call: the cookie's, with its CSRF token and,
        when the browser says where the call comes from, this server's own origin."""
        session = self.session(scope)
        if session is None:
            return None
        sent = _header(scope, CSRF_HEADER) or ""
        if not hmac.compare_digest(sent.encode(), self.csrf_token(session).encode()):
            return None
        if not same_origin(scope):
            return None
        return session

    async def sign_out(self, session: Session) -> None:
        self._forget_expired()
        self._revoked[session.id] = session.expires_at
        if self._redis is not None and self._redis.up:
            key = self._redis.key(_REVOKED_KEY)
            try:
                await self._redis.run(lambda r: r.zadd(key, {session.id: session.expires_at}))
            except Exception:  # SharedDown: this process knows; the others will not
                log.warning("console: sign-out not shared (Redis is down)")

    def _forget_expired(self) -> None:
        now = time.time()
        for session_id in [s for s, expiry in self._revoked.items() if expiry <= now]:
            del self._revoked[session_id]

    async def _sync_revoked(self) -> None:
        """Every tick: the sessions other replicas signed out of."""
        assert self._redis is not None
        key, now = self._redis.key(_REVOKED_KEY), int(time.time())

        async def fetch(redis: object) -> list[tuple[str, float]]:
            await redis.zremrangebyscore(key, "-inf", now)  # type: ignore[attr-defined]
            found: list[tuple[str, float]] = await redis.zrange(  # type: ignore[attr-defined]
                key, 0, -1, withscores=True
            )
            return found

        for session_id, expiry in await self._redis.run(fetch):
            self._revoked[session_id] = int(expiry)
        self._forget_expired()

    # -- the admin API ----------------------------------------------------------------------

    def authorize_admin(self, scope: Scope) -> str:
        """How the caller proves it is the admin ("admin_key" or "console"); else the refusal:
        403 without ADMIN_KEY, 401 for a missing or wrong key or session."""
        if not self.enabled:
            raise admin_disabled()
        token = _bearer(scope)
        if token is not None:
            if self.is_admin_key(token):
                return "admin_key"
            raise _unauthorized("Incorrect admin key provided.")
        if self.api_session(scope) is not None:
            return "console"
        if self.session(scope) is not None:
            raise _unauthorized(
                "A console session needs its CSRF token (X-CSRF-Token) and this server's own "
                "origin on every API call.",
                code="csrf_failed",
            )
        raise _unauthorized(
            "The admin API needs 'Authorization: Bearer <ADMIN_KEY>' (or a console session).",
            code="missing_api_key",
        )

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._signing, payload.encode(), hashlib.sha256).digest())


def same_origin(scope: Scope) -> bool:
    """False when the browser says the request comes from another origin: its
    `Sec-Fetch-Site` (which a page cannot set), else its `Origin` against our `Host`. A
    client that sends neither is not a browser, so no other site can be acting through it."""
    fetch_site = _header(scope, b"sec-fetch-site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = _header(scope, b"origin")
    if origin is not None:
        host = _header(scope, b"host")
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        return host is not None and origin == f"{scheme}://{host}"
    return True


def cookie_header(value: str, *, max_age: int, secure: bool) -> str:
    """The Set-Cookie value: HttpOnly, SameSite=Strict, Path=/, Secure over https."""
    attributes = f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    return attributes + ("; Secure" if secure else "")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    return cookie_parser(raw).get(name) if raw else None  # as lenient as browsers


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None
